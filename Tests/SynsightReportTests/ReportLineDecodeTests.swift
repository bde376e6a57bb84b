@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightReport
import Testing
import SynsightTestSupport

// ReportEvent.decode(line:) builds only the fields the report reads; it must
// accept and refuse exactly what decode(JSONReader.parse(line)) does, with the
// same messages, and keep the whole record as `raw`.

let sampleLines: [String] = [
    #"{"v":1,"ts":"2026-11-22T03:17:31.585185390Z","kind":"refusal","reason":"no_listener","cause":"never_listened","port":9,"family":"ipv4","netns":4026531833,"local":{"addr":"127.0.0.1","port":9},"remote":{"addr":"127.0.0.1","port":43642},"client":{"pid":4634,"comm":"curl","exe":"/usr/bin/curl"},"evidence":{"hook":"tp_btf/tcp_send_reset","listeners":[{"addr":"127.0.0.1","port":9,"pid":1}]},"hint":"start the service"}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"summary","reason":"no_listener","port":9,"count":1200,"first_ts":"2026-11-22T03:17:30Z","last_ts":"2026-11-22T03:17:31Z","evidence":{"summarized_kind":"refusal"}}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"lost","count":7,"evidence":{"where":"ring buffer full"}}"#,
    #"  {"v" : 1 , "ts" : "2026-11-22T03:17:31Z" , "kind" : "drop" , "process" : {"pid" : 12, "comm" : "nginx"} }  "#,
    // Escaped keys and values, unicode escapes, surrogate pairs.
    #"{"\u0076":1,"t\u0073":"2026-11-22T03:17:31Z","kind":"refusal","hint":"a \"quoted\" \ud83d\ude00 \u00e9 tab\t","cause":null}"#,
    // Duplicate keys: the first wins.
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","port":9,"port":10}"#,
    // Numbers with fraction/exponent in skipped and read fields.
    #"{"v":1.0,"ts":"2026-11-22T03:17:31Z","kind":"refusal","extra":[1.5e3,-0.25,true,false,null,{"a":[[]]}]}"#,
    // Field errors.
    #"{"ts":"2026-11-22T03:17:31Z","kind":"refusal"}"#,
    #"{"v":2,"ts":"2026-11-22T03:17:31Z","kind":"refusal"}"#,
    #"{"v":1,"ts":"yesterday","kind":"refusal"}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","port":70000}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"summary"}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","process":{"comm":"x"}}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","reason":5}"#,
    // Invalid JSON, in read and in skipped fields.
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal""#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","evidence":{"a":01}}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","evidence":{"a":"bad \x escape"}}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","evidence":{"a":"\u12"}}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","evidence":[1,]}"#,
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal"} trailing"#,
    "{\"v\":1,\"ts\":\"2026-11-22T03:17:31Z\",\"kind\":\"refusal\",\"evidence\":\"raw\u{01}control\"}",
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","evidence":tru}"#,
    String(repeating: "[", count: 70) + String(repeating: "]", count: 70),
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"refusal","deep":"# + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}",
    // Not objects.
    #"[1,2]"#, #""text""#, "42", "null", "",
    "{}",
]

func viaTree(_ line: String) -> Result<ReportEvent, ReportLineError> {
    guard let v = JSONReader.parse(line) else { return .failure(.init("invalid JSON")) }
    return ReportEvent.decode(v)
}

func viaLine(_ line: String) -> Result<ReportEvent, ReportLineError> {
    var s = line
    return s.withUTF8 { ReportEvent.decode(line: $0) }
}

@Suite("ReportEvent.decode(line:)")
struct ReportLineDecodeTests {
    @Test(arguments: sampleLines) func sameVerdictAsTheFullParse(_ line: String) {
        switch (viaTree(line), viaLine(line)) {
        case let (.success(a), .success(b)):
            #expect(a.ts == b.ts && a.kind == b.kind && a.reason == b.reason && a.cause == b.cause)
            #expect(a.port == b.port && a.process == b.process && a.client == b.client)
            #expect(a.count == b.count && a.firstTs == b.firstTs && a.lastTs == b.lastTs && a.hint == b.hint)
            #expect(a.raw == b.raw, "raw must be the whole record")
        case let (.failure(a), .failure(b)):
            #expect(a == b)
        case let (a, b):
            Issue.record("full parse \(a) but line decode \(b) for \(line)")
        }
    }

    @Test func rawIsTheWholeRecord() throws {
        let ev = try viaLine(sampleLines[0]).get()
        #expect(ev.raw["evidence"]?["hook"]?.stringValue == "tp_btf/tcp_send_reset")
        #expect(ev.raw["local"]?["addr"]?.stringValue == "127.0.0.1")
        #expect(ev.client == ReportProcess(pid: 4634, comm: "curl"))
    }

    @Test func everyDecodedFieldIsMatchedAsBytes() {
        for name in ReportEvent.decodedFields {
            var s = name
            #expect(s.withUTF8 { ReportEvent.decodedField($0) } == name)
        }
        for other in ["evidence", "family", "netns", "local", "remote", "vv", "kinds", "t", ""] {
            var s = other
            #expect(s.withUTF8 { $0.isEmpty ? nil : ReportEvent.decodedField($0) } == nil)
        }
    }
}
