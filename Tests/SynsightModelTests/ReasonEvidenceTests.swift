import Foundation
@testable import SynsightBase
@testable import SynsightModel
import Testing

/// Every typed evidence struct (`Reason.evidenceType`) against the JSON
/// Schema: each field of its layout is a property of its reason's evidence in
/// `$defs/reason_<name>` (through `$ref`s, `allOf` and per-cause `then`
/// branches) with the JSON type the struct writes, and an object with every
/// field set is read back and written again unchanged, in the same order.
@Suite("typed reason evidence matches the schema and round-trips")
struct ReasonEvidenceTests {
    typealias Kind = EvidenceFieldKind

    static var typed: [(Reason, any ReasonEvidence.Type)] {
        Reason.allCases.compactMap { r in r.evidenceType.map { (r, $0) } }
    }

    static func reasons<E: ReasonEvidence>(_: E.Type) -> Set<Reason> { E.reasons }

    static func roundTrip<E: ReasonEvidence>(_: E.Type, _ fields: [(String, JSONValue)]) -> [(String, JSONValue)] {
        E(fields).fields
    }

    static func kinds<E: ReasonEvidence>(_: E.Type) -> [(key: EvidenceKey, kind: Kind)] {
        E.layout.map { ($0.key, $0.kind) }
    }

    // MARK: the schema side

    static func resolve(_ node: Any?, in schema: [String: Any]) -> [String: Any]? {
        guard let n = node as? [String: Any] else { return nil }
        guard let ref = n["$ref"] as? String else { return n }
        let name = String(ref.dropFirst("#/$defs/".count))
        return resolve(SchemaContractTests.at(schema, "$defs", name), in: schema)
    }

    /// Every property an evidence node allows, with each schema it may have.
    static func properties(_ node: Any?, in schema: [String: Any], into out: inout [String: [[String: Any]]]) {
        guard let n = resolve(node, in: schema) else { return }
        for (name, p) in (n["properties"] as? [String: Any]) ?? [:] {
            if let ps = resolve(p, in: schema) { out[name, default: []].append(ps) }
        }
        for sub in (n["allOf"] as? [Any]) ?? [] { properties(sub, in: schema, into: &out) }
    }

    /// The evidence properties of one reason: its evidence node and those of its per-cause branches.
    static func evidenceProperties(_ reason: Reason, in schema: [String: Any]) throws -> [String: [[String: Any]]] {
        let def = try #require(SchemaContractTests.at(schema, "$defs", "reason_" + reason.rawValue) as? [String: Any])
        var out: [String: [[String: Any]]] = [:]
        properties(SchemaContractTests.at(def, "properties", "evidence"), in: schema, into: &out)
        for rule in (def["allOf"] as? [[String: Any]]) ?? [] {
            properties(SchemaContractTests.at(rule, "then", "properties", "evidence"), in: schema, into: &out)
        }
        return out
    }

    /// The JSON types a property schema allows.
    static func types(_ p: [String: Any]) -> Set<String> {
        if let t = p["type"] as? String { return [t] }
        if let t = p["type"] as? [String] { return Set(t) }
        let values = (p["enum"] as? [Any]) ?? (p["const"].map { [$0] } ?? [])
        return Set(values.map { v -> String in
            if v is String { return "string" }
            if v is NSNull { return "null" }
            return "other"
        })
    }

    static func jsonTypes(_ k: Kind) -> Set<String> {
        switch k {
        case .string: return ["string"]
        case .integer: return ["integer"]
        case .boolean, .flag: return ["boolean"]
        case .value: return ["object"]
        case .array, .strings: return ["array"]
        case .nullableStrings: return ["array", "null"]
        }
    }

    @Test("each typed reason's struct carries that reason, and its keys are distinct")
    func reasonsAndKeys() {
        #expect(Self.typed.count == Reason.allCases.count, "every reason has typed evidence")
        for (reason, type) in Self.typed {
            #expect(Self.reasons(type).contains(reason), "\(type) does not list \(reason.rawValue)")
            let keys = Self.kinds(type).map(\.key)
            #expect(Set(keys).count == keys.count, "\(type): a key twice in its layout")
        }
    }

    @Test("every field of every struct is in its reason's evidence schema, with the type it writes")
    func fieldsAreInTheSchema() throws {
        let schema = try SchemaContractTests.schema()
        for (reason, type) in Self.typed {
            let props = try Self.evidenceProperties(reason, in: schema)
            #expect(!props.isEmpty, "no evidence properties for \(reason.rawValue)")
            for (key, kind) in Self.kinds(type) {
                guard let schemas = props[key.rawValue] else {
                    Issue.record("\(type).\(key): '\(key.rawValue)' is not a property of $defs/reason_\(reason.rawValue) evidence")
                    continue
                }
                let allowed = schemas.reduce(into: Set<String>()) { $0.formUnion(Self.types($1)) }
                #expect(Self.jsonTypes(kind).isSubset(of: allowed),
                        "\(type).\(key): writes \(Self.jsonTypes(kind).sorted()), the schema allows \(allowed.sorted())")
            }
        }
    }

    /// An evidence object with every field of `kinds` set to a value it writes.
    static func sample(_ kinds: [(key: EvidenceKey, kind: Kind)], nullLists: Bool) -> [(String, JSONValue)] {
        kinds.map { key, kind in
            let v: JSONValue
            switch kind {
            case .string: v = .string("s-" + key.rawValue)
            case .integer: v = .int(Int64(key.rawValue.count))
            case .boolean: v = .bool(key.rawValue.count % 2 == 0)
            case .flag(let d): v = .bool(!d)
            case .value: v = .object([("addr", .string("127.0.0.1")), ("port", .int(8080))])
            case .array: v = .array([.object([("pid", .int(1)), ("comm", .string("web"))])])
            case .strings: v = .array([.string("a"), .string("b")])
            case .nullableStrings: v = nullLists ? .null : .array([.string("selinux")])
            }
            return (key.rawValue, v)
        }
    }

    @Test("every struct reads back and writes again an object with every field set, in order")
    func everyFieldRoundTrips() {
        for (_, type) in Self.typed {
            let kinds = Self.kinds(type)
            for nullLists in [false, true] {
                let full = Self.sample(kinds, nullLists: nullLists)
                #expect(JSONValue.object(Self.roundTrip(type, full)) == .object(full), "\(type)")
            }
            // A key the struct does not know is skipped, not kept or fatal.
            let extra = Self.sample(kinds, nullLists: false) + [("a_field_of_2030", .int(1))]
            #expect(Self.roundTrip(type, extra).count == kinds.count, "\(type)")
            #expect(Self.roundTrip(type, []).isEmpty, "\(type): an empty struct writes something")
        }
    }

    @Test("the Record accessors return the struct only for its reasons")
    func accessors() {
        var r = Record(ts: 0, kind: .overflow, reason: .fdExhausted,
                       evidence: [(EvidenceKey.errno.rawValue, .string("EMFILE")), (EvidenceKey.nofileLimit.rawValue, .int(64))])
        #expect(r.fdExhaustedEvidence?.errno == "EMFILE")
        #expect(r.fdExhaustedEvidence?.nofileLimit == 64)
        #expect(r.overflowEvidence == nil)
        r.reason = .acceptQueueFull
        #expect(r.fdExhaustedEvidence == nil)
        #expect(r.overflowEvidence?.nofileLimit == 64)
        r.reason = nil
        #expect(r.evidence(as: OverflowEvidence.self) == nil)
    }

    @Test("client failures and timeouts: one struct for reset_by_peer and unknown, and connect_timeout's drop kept as written")
    func clientFailureAndTimeout() {
        let drop: JSONValue = .object([("reason", .string("firewall_drop")), ("netns", .int(7)),
                                       ("ts", .string("2026-01-01T00:00:00.000000000Z")), ("rule", .string("tcp dport 80 drop")),
                                       ("table", .string("inet filter"))])
        let timeout: [(String, JSONValue)] = [
            EvidenceKey.errno(.string("ETIMEDOUT")), EvidenceKey.afterMs(.int(1023)), EvidenceKey.hook(.string("h")),
            EvidenceKey.synRetransmits(.int(3)), EvidenceKey.drop(drop),
        ]
        var r = Record(ts: 0, kind: .connectFailure, reason: .connectTimeout, evidence: timeout)
        #expect(r.connectTimeoutEvidence?.synRetransmits == 3)
        #expect(r.connectTimeoutEvidence?.drop == drop)
        #expect(r.connectTimeoutEvidence?.egressInterface == nil)
        #expect(JSONValue.object(r.connectTimeoutEvidence?.fields ?? []) == .object(timeout))
        #expect(r.clientFailureEvidence == nil)

        let reset: JSONValue = .object([("field", .string("ttl")), ("verdict", .string("differs"))])
        r = Record(ts: 0, kind: .connectFailure, reason: .unknown,
                   evidence: [EvidenceKey.errno(.string("ECONNREFUSED")), EvidenceKey.afterMs(.int(0)),
                              EvidenceKey.hook(.string("h")), EvidenceKey.reset(reset)])
        #expect(r.clientFailureEvidence?.errno == "ECONNREFUSED")
        #expect(r.clientFailureEvidence?.reset == reset)
        #expect(r.clientFailureEvidence?.state == nil)
        #expect(r.connectTimeoutEvidence == nil)
        r.reason = .resetByPeer
        r.evidence = [EvidenceKey.errno(.string("ECONNRESET")), EvidenceKey.afterMs(.int(5)), EvidenceKey.hook(.string("h")),
                      EvidenceKey.state(.string(ClientFailureEvidence.established)), EvidenceKey.behindProxy(.object([]))]
        #expect(r.clientFailureEvidence?.state == "established")
        // behind_proxy is joined after attribution: skipped, not kept.
        #expect(r.clientFailureEvidence?.fields.map(\.0) == ["errno", "after_ms", "hook", "state"])
    }
}
