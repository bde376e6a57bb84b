import Foundation
@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport

/// docs/schema/synsight-record-v1.schema.json against the Swift types that
/// write the records: every kind, reason and cause (Cause.swift), and the
/// closed evidence values, are the same sets on both sides, so the published
/// schema and the code cannot drift apart.
@Suite("JSON Schema v1 matches the Swift contract")
struct SchemaContractTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../docs/schema/synsight-record-v1.schema.json").standardizedFileURL.path

    static func schema() throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: path), "\(path) is missing")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(path) is not a JSON object")
    }

    /// The object at a path of keys (JSON Pointer-like).
    static func at(_ root: Any?, _ keys: String...) -> Any? {
        keys.reduce(root) { ($0 as? [String: Any])?[$1] }
    }

    static func enumValues(_ node: Any?) -> Set<String>? {
        ((node as? [String: Any])?["enum"] as? [String]).map(Set.init)
    }

    static func reasonDef(_ r: Reason) throws -> [String: Any] {
        try #require(at(try schema(), "$defs", "reason_" + r.rawValue) as? [String: Any], "no $defs/reason_\(r.rawValue)")
    }

    @Test func versionKindsAndReasons() throws {
        let s = try Self.schema()
        #expect(s["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        #expect(Self.at(s, "properties", "v", "const") as? Int == Record.schemaVersion)
        #expect(Self.enumValues(Self.at(s, "properties", "kind")) == Set(RecordKind.allCases.map(\.rawValue)))
        #expect(Self.enumValues(Self.at(s, "properties", "reason")) == Set(Reason.allCases.map(\.rawValue)))
        #expect(Self.enumValues(Self.at(s, "properties", "family")) == nil)  // a $ref
        #expect(Self.enumValues(Self.at(s, "$defs", "family")) == ["ipv4", "ipv6"])
        let summarized = Set(RecordKind.allCases.filter { $0 != .lost && $0 != .summary }.map(\.rawValue))
        #expect(Self.enumValues(Self.at(s, "$defs", "summarized_kind")) == summarized)
    }

    /// Each reason's rules apply through one `if reason == X then $defs/reason_X`.
    @Test func everyReasonIsDispatched() throws {
        let rules = try #require(Self.at(try Self.schema(), "allOf") as? [[String: Any]])
        var dispatched: [String: String] = [:]
        for rule in rules {
            guard let r = Self.at(rule, "if", "properties", "reason", "const") as? String else { continue }
            dispatched[r] = Self.at(rule, "then", "$ref") as? String
        }
        for r in Reason.allCases {
            #expect(dispatched[r.rawValue] == "#/$defs/reason_\(r.rawValue)", "reason \(r.rawValue)")
        }
        #expect(Set(dispatched.keys) == Set(Reason.allCases.map(\.rawValue)))
    }

    /// The schema's cause enum of each reason is exactly Cause.values(for:);
    /// a reason without causes forbids the field.
    @Test(arguments: Reason.allCases)
    func causesOfReason(_ reason: Reason) throws {
        let def = try Self.reasonDef(reason)
        let swift = Cause.values(for: reason)
        #expect(Set(swift).count == swift.count, "duplicate cause of \(reason.rawValue)")
        // snake_case; digits are part of a word (tcp_md5, ipv6_disabled).
        let snake = try Regex("^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
        for c in swift { #expect(c.wholeMatch(of: snake) != nil, "\(c)") }
        if swift.isEmpty {
            #expect(Self.at(def, "properties", "cause") == nil, "\(reason.rawValue) has no causes in Cause.swift")
            #expect(Self.at(def, "not", "required") as? [String] == ["cause"], "\(reason.rawValue) must forbid cause")
        } else {
            #expect(Self.enumValues(Self.at(def, "properties", "cause")) == Set(swift), "causes of \(reason.rawValue)")
        }
    }

    /// Causes with their own evidence shape: every one the schema names is a
    /// cause of that reason, and every lsm_denied cause has its shape.
    @Test func perCauseEvidence() throws {
        for reason in Reason.allCases {
            let rules = (try Self.reasonDef(reason)["allOf"] as? [[String: Any]]) ?? []
            let named = Set(rules.compactMap { Self.at($0, "if", "properties", "cause", "const") as? String })
            #expect(named.isSubset(of: Cause.values(for: reason)), "\(reason.rawValue): \(named)")
            if reason == .lsmDenied { #expect(named == Set(Cause.LSMDenied.allCases.map(\.rawValue))) }
        }
    }

    /// Closed evidence values written from Swift enums (shapes shared by
    /// several reasons are `$defs/evidence_*`, referenced by each).
    @Test func evidenceEnums() throws {
        let s = try Self.schema()
        let shared: [(String, [Reason])] = [("evidence_firewall", [.firewallDrop, .firewallReject]),
                                            ("evidence_overflow", [.acceptQueueFull, .synQueueFull]),
                                            ("evidence_client_failure", [.unknown, .resetByPeer])]
        for (def, reasons) in shared {
            for r in reasons {
                #expect(Self.at(s, "$defs", "reason_" + r.rawValue, "properties", "evidence", "$ref") as? String
                        == "#/$defs/" + def, "\(r.rawValue) evidence")
            }
        }
        #expect(Self.enumValues(Self.at(s, "$defs", "evidence_firewall", "properties", "method"))
                == Set(FirewallMethod.allCases.map(\.rawValue)))
        #expect(Self.enumValues(Self.at(s, "$defs", "handshake_segment"))
                == Set(HandshakeSegment.allCases.map(\.rawValue)))
        #expect(Self.enumValues(Self.at(s, "$defs", "evidence_overflow", "properties", "stage"))
                == Set(OverflowStage.allCases.map(\.name)))
        #expect(Self.enumValues(Self.at(s, "$defs", "evidence_call", "properties", "call"))
                == Set(SocketCall.allCases.map(\.name)))
        #expect(Self.enumValues(Self.at(s, "$defs", "bpf_program", "properties", "owner"))
                == Set(BPFProgramOwner.allCases.map(\.rawValue)))
        #expect(Self.enumValues(Self.at(s, "$defs", "compose_service", "properties", "orchestrator"))
                == Set(ComposeService.Orchestrator.allCases.map(\.rawValue)))
        let errno = Self.at(s, "$defs", "reason_fd_exhausted", "properties", "evidence", "properties", "errno")
        #expect(Self.enumValues(errno) == Set(Cause.FdExhausted.allCases.map { $0.rawValue.uppercased() }))
    }

    @Test func fdExhaustedCauseFromErrno() {
        #expect(Cause.FdExhausted(errno: 24) == .emfile)
        #expect(Cause.FdExhausted(errno: 23) == .enfile)
        #expect(Cause.FdExhausted(errno: 5) == nil)
    }
}
