import Foundation
import Testing

/// The report fixture (Tests/Fixtures/report/recording, written by
/// make-recording.py) stands for what `synsight record` leaves: every record
/// in it must match the published contract, so the report's golden tests
/// exercise records synsight can really write.
@Suite("report fixture against the JSON Schema")
struct ReportFixtureSchemaTests {
    @Test("every record of the fixture recording (.jsonl and .jsonl.gz) validates with check-jsonschema")
    func fixtureValidates() throws {
        let py = try ReportFixture.venvPython()
        let dir = ReportFixture.root.appendingPathComponent("recording").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".jsonl") }.sorted()
        #expect(files.count == 2, "\(files)")
        let script = ReportFixture.root.appendingPathComponent("../../../scripts/check-records.py").standardizedFileURL.path
        let r = try runTool(py, [script] + files.map { dir + "/" + $0 })
        #expect(r.status == 0, "\(r.out)")
    }

    @Test("a record that breaks the contract is rejected, with the record and the schema's message")
    func invalidRecordFails() throws {
        let py = try ReportFixture.venvPython()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-bad-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        // firewall_drop carries no cause; its evidence needs method, mark, drops, hook.
        let bad = #"{"v":1,"ts":"2026-11-22T03:12:10.000000000Z","kind":"drop","reason":"firewall_drop","cause":"nft_rule","evidence":{}}"#
        try Data((bad + "\n").utf8).write(to: file)
        let script = ReportFixture.root.appendingPathComponent("../../../scripts/check-records.py").standardizedFileURL.path
        let r = try runTool(py, [script, file.path])
        #expect(r.status == 1, "\(r.out)")
        #expect(r.out.contains(bad) && r.out.contains("'method' is a required property"), "\(r.out)")
    }
}
