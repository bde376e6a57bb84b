import Foundation
@testable import SynsightModel
import Testing

/// The contract is spelled once: a cause only in its enum (Cause.swift and
/// the enums it names), an evidence key only in EvidenceKey. This scans
/// Sources for the ways a literal would come back.
@Suite("no contract string literals outside the catalogues")
struct ContractLiteralTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources").standardizedFileURL

    static func swiftFiles() throws -> [(path: String, text: String)] {
        let e = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var out: [(String, String)] = []
        for case let url as URL in e where url.pathExtension == "swift" {
            out.append((url.path, try String(contentsOf: url, encoding: .utf8)))
        }
        return out
    }

    @Test("no cause is written, compared or passed as a string literal")
    func noCauseLiterals() throws {
        let files = try Self.swiftFiles()
        #expect(files.count > 50, "found only \(files.count) Swift files under \(Self.sources.path)")
        // `cause: "x"`, `cause = "x"`, `cause == "x"`, `.cause != "x"`; an empty string
        // (a report group without a cause) is not a cause.
        let literal = try Regex(#"\bcause\s*(:|=|==|!=)\s*"[^"]"#)
        for (path, text) in files {
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains(literal) {
                Issue.record("\(path):\(n + 1): a cause as a string literal: \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }

    @Test("evidence keys that other modules read are written only through EvidenceKey")
    func noEvidenceKeyLookupsByString() throws {
        // Reading evidence back by a key string (`$0.0 == "signal_name"`) is what
        // Record.evidence(_:) replaces.
        let lookup = try Regex(#"\$0\.0 == ""#)
        for (path, text) in try Self.swiftFiles() where !path.hasSuffix("EvidenceKey.swift") {
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains(lookup) {
                Issue.record("\(path):\(n + 1): evidence read by a key string: \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }
}
