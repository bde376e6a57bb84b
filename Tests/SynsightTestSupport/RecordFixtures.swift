import SynsightBase
import SynsightModel
import Foundation
import Testing

/// Parses one JSON line (without its newline) with Foundation.
package func parseLine(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    #expect(line.hasSuffix("\n"), "line must end with a newline", sourceLocation: sourceLocation)
    let body = line.hasSuffix("\n") ? String(line.dropLast()) : line
    let object = try JSONSerialization.jsonObject(with: Data(body.utf8))
    return try #require(object as? [String: Any], "line is not a JSON object", sourceLocation: sourceLocation)
}

/// JSONSerialization gives NSNumber-backed values; this tells integers from
/// booleans and floating point.
package func isInteger(_ v: Any?) -> Bool {
    if v is Bool, !(v is Int) { return false }
    guard let n = v as? NSNumber else { return false }
    // "c"/"B" is a boolean, "d"/"f" floating point; the rest are integers.
    let type = String(cString: n.objCType)
    return !["c", "B", "d", "f"].contains(type)
}

/// RFC 3339 UTC with exactly nine fractional digits and "Z".
package var rfc3339Nanos: Regex<AnyRegexOutput> {
    try! Regex(#"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z$"#)
}

package func fullRecord(comm: String = "nginx", exe: String? = "/usr/sbin/nginx") -> Record {
    Record(
        ts: 1_700_000_000_123_456_789, kind: .refusal, reason: .noListener, cause: .noListener(.listenerExited),
        port: 8080, family: .ipv4, netns: 4_026_531_840,
        local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080),
        remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 40_000),
        process: ProcessRef(pid: 900, comm: comm, exe: exe),
        client: ProcessRef(pid: 777, comm: "curl"),
        evidence: [("exited_at", .string("2023-11-14T22:13:19.000000000Z")), ("signal", .int(9)),
                   ("signal_name", .string("SIGKILL")), ("core_dumped", .bool(false)),
                   ("listeners", .array([.object([("addr", .string("::")), ("port", .int(8080))])])),
                   ("nothing", .null), ("negative", .int(-42))],
        hint: "restart the service")
}

package func refusal(port: UInt16, cause: String?, reason: Reason = .noListener) -> Record {
    Record(ts: 0, kind: .refusal, reason: reason, cause: cause.map { RecordCause(reason: reason, rawValue: $0) }, port: port)
}

/// The count for one key (Key's memberwise initializer is not public).
package func count(_ s: TraceSummary, _ port: UInt16, _ reason: String, _ cause: String) -> UInt64? {
    s.counts.first { $0.key.port == port && $0.key.reason == reason && $0.key.cause == cause }?.value
}
