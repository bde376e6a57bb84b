import Glibc
import SynsightBase
import SynsightModel

/// Reading JSON Lines records (schema v1) back for `synsight report`: only
/// the fields the report needs, validated; unknown extra fields are ignored
/// (the contract allows added fields).

extension RFC3339 {
    /// Why a timestamp was not accepted.
    public enum ParseError: Error, Equatable, Sendable {
        /// Not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, or an impossible date or time.
        case syntax
        /// A valid timestamp outside what an Int64 of nanoseconds since the
        /// epoch holds (`representableRangeText`).
        case outOfRange

        /// The phrase for a message, e.g. "field 'ts' is ...".
        public var phrase: String {
            switch self {
            case .syntax: return "not an RFC 3339 timestamp"
            case .outOfRange: return "outside the range synsight can represent (\(RFC3339.representableRangeText))"
            }
        }
    }

    /// Every timestamp synsight handles is an Int64 of nanoseconds since the
    /// epoch: this range in words (whole seconds inside it), for messages.
    public static let representableRangeText = "1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z"

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339; `t`/`z`
    /// and a space separator accepted) into nanoseconds since the Unix epoch;
    /// nil if it is not one or is outside `representableRangeText`.
    public static func parse(_ s: String) -> Int64? {
        if case .success(let t) = parseChecked(s) { return t }
        return nil
    }

    /// `parse`, saying why a string was refused. Never traps: the year has
    /// four digits, so the seconds fit easily in an Int64, and only the
    /// conversion to nanoseconds is checked for overflow.
    public static func parseChecked(_ s: String) -> Result<Int64, ParseError> {
        let b = Array(s.utf8)
        func num(_ at: Int, _ n: Int) -> Int64? {
            guard at >= 0, at + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in at..<at + n {
                guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)  // at most 4 digits
            }
            return v
        }
        guard b.count >= 20,
              let y = num(0, 4), b[4] == UInt8(ascii: "-"), let mo = num(5, 2), b[7] == UInt8(ascii: "-"),
              let d = num(8, 2), [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(b[10]),
              let h = num(11, 2), b[13] == UInt8(ascii: ":"), let mi = num(14, 2), b[16] == UInt8(ascii: ":"),
              let sec = num(17, 2)
        else { return .failure(.syntax) }
        guard (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h <= 23, mi <= 59, sec <= 60 else {
            return .failure(.syntax)
        }
        var i = 19
        var nanos: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 9 { nanos = nanos * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return .failure(.syntax) }
            for _ in min(digits, 9)..<9 { nanos *= 10 }
        }
        guard i < b.count else { return .failure(.syntax) }
        var offset: Int64 = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2),
                  oh <= 23, om <= 59 else { return .failure(.syntax) }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return .failure(.syntax)
        }
        guard i == b.count else { return .failure(.syntax) }
        // Years 0000-9999: |secs| < 4e11, no overflow before the nanoseconds.
        var secs = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
        // Before the epoch, borrow a second so the product cannot overflow
        // when the sum still fits (1677-09-21T00:12:43.145224192Z is Int64.min).
        if secs < 0, nanos > 0 { secs += 1; nanos -= 1_000_000_000 }
        let (ns, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (t, o2) = ns.addingReportingOverflow(nanos)
        return o1 || o2 ? .failure(.outOfRange) : .success(t)
    }

    static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Howard Hinnant's days-from-civil (inverse of `civil(fromDays:)`).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}

/// A process as the report counts it: pid, comm and its workload (unit,
/// container, pod) when the record names one.
public struct ReportProcess: Hashable, Sendable {
    public var pid: Int64
    public var comm: String
    public var workload: ReportWorkload?

    public init(pid: Int64, comm: String, workload: ReportWorkload? = nil) {
        self.pid = pid
        self.comm = comm
        self.workload = workload
    }
}

/// The fields of one record that the report uses.
public struct ReportEvent: Sendable {
    public var ts: Int64
    public var kind: String
    /// The record's reason: one this version knows, or a newer one kept by name.
    public var reason: ReasonValue?
    /// The record's cause, typed under its reason (`.other` when this version does not know it).
    public var cause: RecordCause?
    public var port: Int?
    /// The port the client connected to before DNAT (`original_destination`):
    /// `--port` matches it too (a published port, a Service's port).
    public var originalPort: Int?
    public var process: ReportProcess?
    public var client: ReportProcess?
    /// Events this record stands for: `count` for summary and lost records, else 1.
    public var count: UInt64
    public var firstTs: Int64
    public var lastTs: Int64
    public var hint: String?
    /// The record's `node`, when it names one.
    public var node: ReportNode?
    /// The whole record, kept only as a group's most recent example. Parsed
    /// from the line when asked for: a report reads millions of lines and
    /// shows a few of them, and building every line's tree (then freeing
    /// it) was most of `report`'s time (docs/benchmarks.md).
    /// The published port docker-proxy forwarded (`evidence.proxy.published`):
    /// a refusal behind it happens at the container's port, and `--port`
    /// matches it too. Read on demand (the fast decode skips `evidence`),
    /// and only from a line that has a proxy object at all.
    public var proxyPublishedPort: Int? {
        if let rawLine, !Self.contains(rawLine, Self.proxyNeedle) { return nil }
        guard case .string(let p)? = raw["evidence"]?[EvidenceKey.proxy.rawValue]?["published"] else { return nil }
        return PublishedPort.port(of: p).map(Int.init)
    }
    static let proxyNeedle = Array("\"\(EvidenceKey.proxy.rawValue)\":".utf8)

    /// Does `hay` contain `needle`? (memchr for its first byte, then memcmp.)
    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, hay.count >= needle.count else { return false }
        return hay.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                var i = 0
                let last = h.count - n.count
                while i <= last {
                    guard let hit = memchr(h.baseAddress! + i, Int32(first), last - i + 1) else { return false }
                    let at = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - h.baseAddress!
                    if memcmp(h.baseAddress! + at, n.baseAddress!, n.count) == 0 { return true }
                    i = at + 1
                }
                return false
            }
        }
    }

    public var raw: JSONValue {
        get { rawValue ?? rawLine.flatMap { JSONReader.parse($0) } ?? .null }
        set { rawValue = newValue; rawLine = nil }
    }
    package var rawValue: JSONValue?
    var rawLine: [UInt8]?

    /// The fields `decode` reads; every other field of a line is validated
    /// and skipped by `decode(line:)`.
    static let decodedFields: Set<String> = ["v", "ts", "kind", "reason", "cause", "hint", "port", "count",
                                             "first_ts", "last_ts", "process", "client", "node",
                                             "original_destination"]

    /// The name of a key `decode` reads, or nil: matched on the raw bytes by
    /// length, then content (no String, no allocation per key).
    static func decodedField(_ k: UnsafeBufferPointer<UInt8>) -> String? {
        func eq(_ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == k.count && memcmp(name.utf8Start, k.baseAddress!, k.count) == 0
        }
        switch k.count {
        case 1: return eq("v") ? "v" : nil
        case 2: return eq("ts") ? "ts" : nil
        case 4: return eq("kind") ? "kind" : eq("hint") ? "hint" : eq("port") ? "port" : eq("node") ? "node" : nil
        case 5: return eq("cause") ? "cause" : eq("count") ? "count" : nil
        case 6: return eq("reason") ? "reason" : eq("client") ? "client" : nil
        case 7: return eq("process") ? "process" : eq("last_ts") ? "last_ts" : nil
        case 8: return eq("first_ts") ? "first_ts" : nil
        case 20: return eq("original_destination") ? "original_destination" : nil
        default: return nil
        }
    }

    /// Decodes one line: the whole line must be valid JSON (as
    /// `JSONReader.parse` checks it), but only the fields the report reads
    /// are built; the others are checked and skipped. Same result as
    /// `decode(JSONReader.parse(line))`.
    public static func decode(line: UnsafeBufferPointer<UInt8>) -> Result<ReportEvent, ReportLineError> {
        var p = JSONReader.Parser(b: line)
        p.skipSpace()
        guard p.i < line.count, line[p.i] == UInt8(ascii: "{") else {
            // Not an object: the full parser gives the exact verdict.
            guard let v = JSONReader.parse(line) else { return .failure(.init("invalid JSON")) }
            return decode(v)
        }
        p.i += 1
        var fields: [(String, JSONValue)] = []
        fields.reserveCapacity(12)
        p.skipSpace()
        if p.i < line.count, line[p.i] == UInt8(ascii: "}") {
            p.i += 1
        } else {
            while true {
                p.skipSpace()
                guard p.i < line.count, line[p.i] == UInt8(ascii: "\"") else { return .failure(.init("invalid JSON")) }
                // Keys without escapes (all of synsight's) are matched as
                // bytes: no String is made for the fields that are skipped.
                var j = p.i + 1
                while j < line.count, line[j] != UInt8(ascii: "\""), line[j] != UInt8(ascii: "\\"), line[j] >= 0x20 { j += 1 }
                let key: String?
                if j < line.count, line[j] == UInt8(ascii: "\"") {
                    key = decodedField(UnsafeBufferPointer(rebasing: line[(p.i + 1)..<j]))
                    p.i = j + 1
                } else {
                    guard let k = p.string() else { return .failure(.init("invalid JSON")) }
                    key = decodedFields.contains(k) ? k : nil
                }
                p.skipSpace()
                guard p.i < line.count, line[p.i] == UInt8(ascii: ":") else { return .failure(.init("invalid JSON")) }
                p.i += 1
                p.skipSpace()
                if let k = key {
                    guard let v = p.value(depth: 1) else { return .failure(.init("invalid JSON")) }
                    fields.append((k, v))
                } else {
                    guard p.skipValue(depth: 1) else { return .failure(.init("invalid JSON")) }
                }
                p.skipSpace()
                guard p.i < line.count else { return .failure(.init("invalid JSON")) }
                if line[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
                if line[p.i] == UInt8(ascii: "}") { p.i += 1; break }
                return .failure(.init("invalid JSON"))
            }
        }
        p.skipSpace()
        guard p.i == line.count else { return .failure(.init("invalid JSON")) }
        switch decode(.object(fields)) {
        case .failure(let e): return .failure(e)
        case .success(var ev):
            ev.rawValue = nil
            ev.rawLine = Array(line)
            return .success(ev)
        }
    }

    /// Validates a parsed line. Returns the event, or a one-line reason why
    /// the line is skipped.
    public static func decode(_ v: JSONValue) -> Result<ReportEvent, ReportLineError> {
        guard case .object = v else { return .failure(.init("not a JSON object")) }
        guard let version = v["v"] else { return .failure(.init("missing required field 'v'")) }
        guard let ver = version.intValue else { return .failure(.init("field 'v' is not an integer")) }
        if ver > Int64(Record.schemaVersion) {
            return .failure(.init("schema version \(ver) is newer than this synsight reads (\(Record.schemaVersion)); upgrade synsight"))
        }
        if ver < 1 { return .failure(.init("invalid schema version \(ver)")) }
        guard let tsValue = v["ts"] else { return .failure(.init("missing required field 'ts'")) }
        let ts: Int64
        switch timestamp(tsValue, "ts") { case .success(let t): ts = t; case .failure(let e): return .failure(e) }
        guard let kindValue = v["kind"] else { return .failure(.init("missing required field 'kind'")) }
        guard let kind = kindValue.stringValue, !kind.isEmpty else { return .failure(.init("field 'kind' is not a string")) }

        func optionalString(_ key: String) -> Result<String?, ReportLineError> {
            switch v[key] {
            case nil, .null?: return .success(nil)
            case .string(let s)?: return .success(s)
            default: return .failure(.init("field '\(key)' is not a string"))
            }
        }
        func process(_ key: String) -> Result<ReportProcess?, ReportLineError> {
            switch v[key] {
            case nil, .null?: return .success(nil)
            case let p? where p["pid"]?.intValue != nil:
                return .success(ReportProcess(pid: p["pid"]!.intValue!, comm: p["comm"]?.stringValue ?? "?",
                                              workload: ReportWorkload.decode(p)))
            default: return .failure(.init("field '\(key)' is not a process object with a 'pid'"))
            }
        }

        let reason: ReasonValue?, cause: RecordCause?, hint: String?
        let proc: ReportProcess?, client: ReportProcess?
        switch optionalString("reason") { case .success(let s): reason = s.map(ReasonValue.init(rawValue:)); case .failure(let e): return .failure(e) }
        switch optionalString("cause") { case .success(let s): cause = s.map { RecordCause(reason: reason?.known, rawValue: $0) }; case .failure(let e): return .failure(e) }
        switch optionalString("hint") { case .success(let s): hint = s; case .failure(let e): return .failure(e) }
        switch process("process") { case .success(let p): proc = p; case .failure(let e): return .failure(e) }
        switch process("client") { case .success(let p): client = p; case .failure(let e): return .failure(e) }

        var port: Int?
        switch v["port"] {
        case nil, .null?: port = nil
        case .int(let p)? where (0...65535).contains(p): port = Int(p)
        default: return .failure(.init("field 'port' is not a port number"))
        }

        var count: UInt64 = 1
        if kind == RecordKind.summary.rawValue || kind == RecordKind.lost.rawValue {
            switch Self.count(v["count"], kind: kind) {
            case .success(let n): count = n
            case .failure(let e): return .failure(e)
            }
        }

        var first = ts, last = ts
        if kind == RecordKind.summary.rawValue {
            for (key, into) in [("first_ts", 0), ("last_ts", 1)] {
                guard let value = v[key], value != .null else { continue }
                switch timestamp(value, key) {
                case .success(let t): if into == 0 { first = t } else { last = t }
                case .failure(let e): return .failure(e)
                }
            }
            if first > last { swap(&first, &last) }
        }
        var originalPort: Int?
        if case .int(let p)? = v["original_destination"]?["port"], (0...65535).contains(p) { originalPort = Int(p) }
        return .success(ReportEvent(ts: ts, kind: kind, reason: reason, cause: cause, port: port,
                                    originalPort: originalPort, process: proc, client: client, count: count, firstTs: first, lastTs: last, hint: hint,
                                    node: ReportNode.decode(v["node"]), rawValue: v, rawLine: nil))
    }
}

extension ReportEvent {
    /// A timestamp field: an RFC 3339 string inside the range synsight represents.
    static func timestamp(_ v: JSONValue, _ key: String) -> Result<Int64, ReportLineError> {
        guard let s = v.stringValue else { return .failure(.init("field '\(key)' is not an RFC 3339 timestamp")) }
        switch RFC3339.parseChecked(s) {
        case .success(let t): return .success(t)
        case .failure(let e): return .failure(.init("field '\(key)' is \(e.phrase)"))
        }
    }

    /// `count` of a summary or lost record: a JSON integer from 0 to
    /// UInt64.max. A fraction, an exponent, a sign, a string or a boolean
    /// makes the line bad (it is not read as some other number).
    package static func count(_ v: JSONValue?, kind: String) -> Result<UInt64, ReportLineError> {
        guard let v else { return .failure(.init("\(kind) record without required field 'count'")) }
        switch v {
        case .int(let n) where n >= 0: return .success(UInt64(n))
        case .number(let text):
            if let n = UInt64(text) { return .success(n) }
            let shown = text.count <= 32 ? text : String(text.prefix(32)) + "..."
            return .failure(.init("field 'count' is not a non-negative integer up to \(UInt64.max) (got \(shown))"))
        default:
            return .failure(.init("field 'count' is not a non-negative integer up to \(UInt64.max)"))
        }
    }
}

public struct ReportLineError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
