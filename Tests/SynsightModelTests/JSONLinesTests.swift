import Foundation
@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport





@Suite("JSON Lines")
struct JSONLinesTests {
    @Test func lineIsOneTerminatedLine() {
        let line = JSONLines.line(fullRecord())
        #expect(line.hasSuffix("\n"))
        #expect(!line.hasSuffix("\n\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(!line.contains("\r"))
        #expect(line.hasPrefix(#"{"v":1,"ts":"2023-11-14T22:13:20.123456789Z","kind":"refusal","#))
    }

    @Test func appendMatchesLineAndAccumulates() {
        var out: [UInt8] = Array("prefix\n".utf8)
        JSONLines.append(fullRecord(), to: &out)
        JSONLines.append(Record(ts: 0, kind: .lost, count: 3), to: &out)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text == "prefix\n" + JSONLines.line(fullRecord()) + JSONLines.line(Record(ts: 0, kind: .lost, count: 3)))
    }

    @Test func contractFieldsAndTypes() throws {
        let o = try parseLine(JSONLines.line(fullRecord()))
        #expect(Set(o.keys) == ["v", "ts", "kind", "reason", "cause", "port", "family", "netns",
                                "local", "remote", "process", "client", "evidence", "hint"])
        #expect(isInteger(o["v"]))
        #expect(o["v"] as? Int == 1)
        let ts = try #require(o["ts"] as? String)
        #expect(ts == "2023-11-14T22:13:20.123456789Z")
        #expect(ts.wholeMatch(of: rfc3339Nanos) != nil)
        #expect(o["kind"] as? String == "refusal")
        #expect(o["reason"] as? String == "no_listener")
        #expect(o["cause"] as? String == "listener_exited")
        #expect(isInteger(o["port"]))
        #expect(o["port"] as? Int == 8080)
        #expect(o["family"] as? String == "ipv4")
        #expect(isInteger(o["netns"]))
        #expect(o["netns"] as? Int == 4_026_531_840)

        let local = try #require(o["local"] as? [String: Any])
        #expect(Set(local.keys) == ["addr", "port"])
        #expect(local["addr"] as? String == "127.0.0.1")
        #expect(isInteger(local["port"]))
        #expect(local["port"] as? Int == 8080)
        let remote = try #require(o["remote"] as? [String: Any])
        #expect(remote["addr"] as? String == "127.0.0.1")
        #expect(remote["port"] as? Int == 40_000)

        let process = try #require(o["process"] as? [String: Any])
        #expect(Set(process.keys) == ["pid", "comm", "exe"])
        #expect(isInteger(process["pid"]))
        #expect(process["pid"] as? Int == 900)
        #expect(process["comm"] as? String == "nginx")
        #expect(process["exe"] as? String == "/usr/sbin/nginx")

        let client = try #require(o["client"] as? [String: Any])
        #expect(Set(client.keys) == ["pid", "comm"])
        #expect(client["pid"] as? Int == 777)
        #expect(client["comm"] as? String == "curl")

        let evidence = try #require(o["evidence"] as? [String: Any])
        #expect(evidence["signal"] as? Int == 9)
        #expect(isInteger(evidence["signal"]))
        #expect(evidence["signal_name"] as? String == "SIGKILL")
        #expect(evidence["exited_at"] as? String == "2023-11-14T22:13:19.000000000Z")
        #expect(evidence["core_dumped"] as? Bool == false)
        #expect(!isInteger(evidence["core_dumped"]))
        #expect(evidence["nothing"] is NSNull)
        #expect(evidence["negative"] as? Int == -42)
        let listeners = try #require(evidence["listeners"] as? [[String: Any]])
        #expect(listeners.count == 1)
        #expect(listeners.first?["addr"] as? String == "::")

        #expect(o["hint"] as? String == "restart the service")
    }

    @Test func optionalFieldsAreOmittedNotNull() throws {
        let r = Record(ts: 5, kind: .refusal, reason: .noListener, cause: .noListener(.neverListened), port: 1,
                       family: .ipv6, netns: 1,
                       local: Endpoint(addr: .any6, port: 1), remote: Endpoint(addr: .any6, port: 2),
                       process: ProcessRef(pid: 1, comm: "init"), hint: "h")
        let o = try parseLine(JSONLines.line(r))
        #expect(o["client"] == nil)
        #expect(o["count"] == nil)
        let process = try #require(o["process"] as? [String: Any])
        #expect(Set(process.keys) == ["pid", "comm"])
        #expect((o["local"] as? [String: Any])?["addr"] as? String == "::")
        #expect(o["family"] as? String == "ipv6")
        // evidence is always an object, even empty.
        let evidence = try #require(o["evidence"] as? [String: Any])
        #expect(evidence.isEmpty)
    }

    @Test func lostRecord() throws {
        let r = Record(ts: 1_000_000_000, kind: .lost, evidence: [("where", .string("ring buffer full"))],
                       hint: "filter with --port", count: 1234)
        let line = JSONLines.line(r)
        let o = try parseLine(line)
        #expect(o["kind"] as? String == "lost")
        #expect(isInteger(o["count"]))
        #expect(o["count"] as? Int == 1234)
        #expect(o["reason"] == nil)
        #expect(o["port"] == nil)
        #expect(o["ts"] as? String == "1970-01-01T00:00:01.000000000Z")
        #expect((o["evidence"] as? [String: Any])?["where"] as? String == "ring buffer full")
    }

    @Test func recordJSONMatchesLine() {
        let r = fullRecord()
        #expect(r.json["v"]?.intValue == 1)
        #expect(r.json["port"]?.intValue == 8080)
        #expect(r.json["process"]?["comm"]?.stringValue == "nginx")
        #expect(r.json["local"]?["addr"]?.stringValue == "127.0.0.1")
        #expect(r == fullRecord())
        #expect(r != fullRecord(comm: "other"))
    }

    @Test(arguments: [
        "quote\"inside",
        "back\\slash",
        "new\nline",
        "tab\tand\rcr",
        "esc\u{1B}[31mred",
        "nul\u{0}byte",
        "line\u{2028}sep\u{2029}para",
        "del\u{7F}",
        "bell\u{07}",
        "emoji 😀 and ünïcödé 日本",
        "\u{FFFD}invalid",
        "",
    ])
    func escapingRoundTrips(text: String) throws {
        let line = JSONLines.line(fullRecord(comm: text, exe: "/opt/" + text + "/bin"))
        let o = try parseLine(line)
        let process = try #require(o["process"] as? [String: Any])
        #expect(process["comm"] as? String == text)
        #expect(process["exe"] as? String == "/opt/" + text + "/bin")

        // The raw line carries no control bytes but its final newline, no DEL,
        // and no raw U+2028/U+2029 (which break JavaScript and some log viewers).
        let bytes = Array(line.utf8)
        #expect(bytes.last == 0x0A)
        #expect(!bytes.dropLast().contains { $0 < 0x20 || $0 == 0x7F })
        #expect(!line.unicodeScalars.contains { $0.value == 0x2028 || $0.value == 0x2029 })
    }

    @Test func escapeSequencesAreTheShortOnes() {
        let line = JSONLines.line(fullRecord(comm: "a\"b\\c\nd\te\rf\u{1B}g\u{0}h\u{2028}i\u{7F}", exe: nil))
        #expect(line.contains(#""comm":"a\"b\\c\nd\te\rf\u001bg\u0000h\u2028i\u007f""#))
    }

    @Test func integerExtremes() {
        var out: [UInt8] = []
        JSONLines.append(JSONValue.array([.int(0), .int(-1), .int(Int64.max), .int(Int64.min), .int(1_000_000)]), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "[0,-1,9223372036854775807,-9223372036854775808,1000000]")
    }

    @Test func maximumValuesStayIntegers() throws {
        let r = Record(ts: 0, kind: .refusal, port: 65535, netns: UInt32.max,
                       process: ProcessRef(pid: UInt32.max, comm: "x"), count: UInt64.max)
        let o = try parseLine(JSONLines.line(r))
        #expect(o["port"] as? Int == 65535)
        #expect(o["netns"] as? Int == Int(UInt32.max))
        #expect((o["process"] as? [String: Any])?["pid"] as? Int == Int(UInt32.max))
        // count clamps to Int64.max rather than wrapping negative.
        #expect(o["count"] as? Int == Int.max)
    }

    @Test func everyReasonAndKindIsSnakeCase() throws {
        let snake = try Regex("^[a-z]+(_[a-z]+)*$")
        for r in Reason.allCases { #expect(r.rawValue.wholeMatch(of: snake) != nil, "\(r)") }
        for k in RecordKind.allCases { #expect(k.rawValue.wholeMatch(of: snake) != nil, "\(k)") }
        for c in NoListenerCause.allCases { #expect(c.rawValue.wholeMatch(of: snake) != nil, "\(c)") }
        #expect(Set(Reason.allCases.map(\.rawValue)) == [
            "no_listener", "accept_queue_full", "syn_queue_full", "firewall_reject", "firewall_drop",
            "lsm_denied", "address_in_use", "privileged_port", "address_not_available", "fd_exhausted",
            "ephemeral_ports_exhausted", "reset_by_peer", "packet_dropped", "connect_timeout", "no_route", "no_route_back", "unknown"])
        let snakeDigits = try Regex("^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
        for c in DropCause.allCases { #expect(c.rawValue.wholeMatch(of: snakeDigits) != nil, "\(c)") }
        #expect(Set(RecordKind.allCases.map(\.rawValue)) == [
            "refusal", "drop", "bind_failure", "connect_failure", "overflow", "denial", "lost", "summary"])
        #expect(Set(NoListenerCause.allCases.map(\.rawValue)) == [
            "never_listened", "listener_closed", "listener_exited", "bound_to_other_address",
            "family_mismatch", "other_netns", "wrong_port", "restarting", "bound_to_other_device", "other_vrf",
            "publisher_stopped", "publisher_not_forwarded", "starting"])
    }
}

@Suite("RFC 3339")
struct RFC3339Tests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (999_999_999, "1970-01-01T00:00:00.999999999Z"),
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
        // Leap day, and the day after it.
        (1_709_210_096_000_000_001, "2024-02-29T12:34:56.000000001Z"),
        (1_709_251_200_000_000_000, "2024-03-01T00:00:00.000000000Z"),
        // 2000 is a leap year (divisible by 400); 2100 is not.
        (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
        (4_107_542_400_000_000_000, "2100-03-01T00:00:00.000000000Z"),
        (4_107_542_399_500_000_000, "2100-02-28T23:59:59.500000000Z"),
        // End of a year.
        (1_704_067_199_999_999_999, "2023-12-31T23:59:59.999999999Z"),
        // Before 1970: floor, not truncation, of the seconds.
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-1_000_000_000, "1969-12-31T23:59:59.000000000Z"),
        (-1_000_000_001, "1969-12-31T23:59:58.999999999Z"),
        (-86_400_000_000_000, "1969-12-31T00:00:00.000000000Z"),
        (-86_400_000_000_001, "1969-12-30T23:59:59.999999999Z"),
        (-2_208_988_800_000_000_000, "1900-01-01T00:00:00.000000000Z"),
        (-126_230_400_000_000_000, "1966-01-01T00:00:00.000000000Z"),
    ])
    func knownInstants(ns: Int64, expected: String) {
        #expect(RFC3339.format(nanosecondsSinceEpoch: ns) == expected)
    }

    @Test func agreesWithFoundationOverAWideRange() throws {
        let fmt = DateFormatter()
        fmt.locale = Locale(identifier: "en_US_POSIX")
        fmt.timeZone = TimeZone(identifier: "UTC")
        fmt.calendar = Calendar(identifier: .gregorian)
        fmt.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        // Every ~37 days and some odd seconds from 1901 to 2200.
        var secs: Int64 = -2_177_452_800
        var checked = 0
        while secs < 7_258_118_400 {
            let nanos = Int64((secs &* 7919) & 0x3FFF_FFFF) % 1_000_000_000
            let got = RFC3339.format(nanosecondsSinceEpoch: secs * 1_000_000_000 + nanos)
            let want = fmt.string(from: Date(timeIntervalSince1970: TimeInterval(secs)))
            #expect(got.hasPrefix(want + "."), "\(secs): \(got) vs \(want)")
            #expect(got.wholeMatch(of: rfc3339Nanos) != nil)
            let frac = got.dropFirst(20).prefix(9)
            #expect(Int64(frac) == nanos)
            secs += 3_196_811
            checked += 1
        }
        #expect(checked > 2_500)
    }
}

@Suite("TerminalText")
struct TerminalTextTests {
    @Test(arguments: [
        ("\u{1B}[2Jclear", "\\x1b[2Jclear"),
        ("over\rwrite", "over\\x0dwrite"),
        ("back\u{8}space", "back\\x08space"),
        ("nul\u{0}", "nul\\x00"),
        ("tab\t", "tab\\x09"),
        ("nl\n", "nl\\x0a"),
        ("del\u{7F}", "del\\x7f"),
        ("csi\u{9B}31m", "csi\\x9b31m"),
        ("nel\u{85}", "nel\\x85"),
        ("c1\u{80}\u{9F}", "c1\\x80\\x9f"),
        ("evil\u{202E}txt.exe", "evil\\u{202e}txt.exe"),
        ("\u{202A}\u{202B}\u{202C}\u{202D}", "\\u{202a}\\u{202b}\\u{202c}\\u{202d}"),
        ("\u{2066}iso\u{2069}", "\\u{2066}iso\\u{2069}"),
        ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
        ("a\\b", "a\\\\b"),
    ])
    func controlsBecomeVisible(input: String, expected: String) {
        let out = TerminalText.escape(input)
        #expect(out == expected)
        #expect(!out.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) })
    }

    @Test(arguments: ["nginx", "postgres: writer", "node /srv/app.js", "Größe", "café", "日本語", "emoji😀", "\u{A0}nbsp", ""])
    func plainTextUnchanged(input: String) {
        #expect(TerminalText.escape(input) == input)
    }
}

@Suite("TextFormat")
struct TextFormatTests {
    @Test func refusalLine() {
        var r = fullRecord(comm: "evil\u{1B}[2Jname\nx", exe: nil)
        r.cause = .noListener(.neverListened)
        r.hint = "start the service\u{1B}]0;pwned\u{07}"
        let line = TextFormat.line(r)
        #expect(!line.contains("\n"))
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        #expect(line.hasPrefix("22:13:20.123456"))
        #expect(line.contains("REFUSAL"))
        #expect(line.contains("port 8080"))
        #expect(line.contains("no_listener/never_listened"))
        #expect(line.contains("127.0.0.1:40000 -> 127.0.0.1:8080"))
        #expect(line.contains("client curl[777]"))
        #expect(line.contains("process evil\\x1b[2Jname\\x0ax[900]"))
        #expect(line.contains("| start the service\\x1b]0;pwned\\x07"))
    }

    @Test func refusalWithoutCauseOrProcess() {
        let r = Record(ts: 0, kind: .refusal, reason: .noListener, port: 22,
                       local: Endpoint(addr: IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1]), port: 22),
                       remote: Endpoint(addr: IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1]), port: 5000))
        let line = TextFormat.line(r)
        #expect(line.hasPrefix("00:00:00.000000"))
        #expect(line.contains("port 22"))
        #expect(line.contains("no_listener"))
        #expect(!line.contains("no_listener/"))
        #expect(line.contains("[::1]:5000 -> [::1]:22"))
        #expect(!line.contains("client"))
        #expect(!line.contains("process"))
        #expect(!line.contains("|"))
    }

    @Test func lostLine() {
        let line = TextFormat.line(Record(ts: 1_700_000_000_123_456_789, kind: .lost, hint: "filter\u{1B}", count: 17))
        #expect(line == "22:13:20.123456  LOST     17 event(s) lost: filter\\x1b")
    }

    /// `trace --fold` on a terminal: the folded rest of a second is one line
    /// that says what it folds and how many, in the kind it folds.
    @Test func foldedSummaryLine() throws {
        var a = StormAggregator(perKeyPerWindow: 2)
        var out: [Record] = []
        for i in 0..<1236 { out += a.add(sampleRecord(i)) }
        out += a.finish()
        let folded = try #require(out.last)
        let line = TextFormat.line(folded)
        #expect(line.hasPrefix("22:13:20.000001  REFUSAL   port 8080  no_listener/never_listened  "), "\(line)")
        #expect(line.contains("process svc[7]"))
        #expect(line.hasSuffix("  … ×1234 more in the last 1s"), "\(line)")
        #expect(!line.contains("|"), "the hint is on the lines printed one by one")
    }
}
