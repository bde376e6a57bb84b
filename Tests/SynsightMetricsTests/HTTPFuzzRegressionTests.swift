import SynsightMetrics
import Testing

// Inputs the `http` fuzz target found (scripts/fuzz.sh), kept in
// Tests/Fixtures/fuzz/http and checked here for what they should give.

@Suite("HTTP request head: fuzz regressions")
struct HTTPFuzzRegressionTests {
    /// crash-0a45bf1f…: a path whose "/" is followed by a combining mark
    /// (U+0356) is one Character "/̖", so a Character-based prefix check
    /// said it does not start with "/". The parser keeps the bytes; the
    /// server answers 404, never /metrics.
    @Test func aCombiningMarkAfterTheSlashIsStillAPathAndNotMetrics() {
        let bytes: [UInt8] = [0x50, 0x20, 0x2F, 0xCD, 0x96, 0x6D, 0x65, 0x74, 0x72, 0x69, 0x63, 0x73,
                              0x20, 0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E, 0x0A, 0x0A]
        let head = HTTPExchange.parseHead(bytes)
        #expect(head == .request(method: "P", path: "/\u{356}metrics"))
        guard case .request(_, let path) = head else { return }
        #expect(path.utf8.first == UInt8(ascii: "/"))
        let response = String(decoding: HTTPExchange.response(to: head) { [] }, as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
    }
}
