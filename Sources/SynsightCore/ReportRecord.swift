import Glibc

/// Reading JSON Lines records (schema v1) back for `synsight report`: only
/// the fields the report needs, validated; unknown extra fields are ignored
/// (the contract allows added fields).

extension RFC3339 {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339; `t`/`z`
    /// and a space separator accepted) into nanoseconds since the Unix epoch.
    public static func parse(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        func num(_ at: Int, _ n: Int) -> Int64? {
            guard at + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in at..<at + n {
                guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)
            }
            return v
        }
        guard b.count >= 20,
              let y = num(0, 4), b[4] == UInt8(ascii: "-"), let mo = num(5, 2), b[7] == UInt8(ascii: "-"),
              let d = num(8, 2), [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(b[10]),
              let h = num(11, 2), b[13] == UInt8(ascii: ":"), let mi = num(14, 2), b[16] == UInt8(ascii: ":"),
              let sec = num(17, 2)
        else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h <= 23, mi <= 59, sec <= 60 else { return nil }
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
            guard digits > 0 else { return nil }
            for _ in min(digits, 9)..<9 { nanos *= 10 }
        }
        guard i < b.count else { return nil }
        var offset: Int64 = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2),
                  oh <= 23, om <= 59 else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(y, mo, d)
        let secs = days * 86400 + h * 3600 + mi * 60 + sec - offset
        return secs * 1_000_000_000 + nanos
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

/// A process as the report counts it: pid and comm.
public struct ReportProcess: Hashable, Sendable {
    public var pid: Int64
    public var comm: String

    public init(pid: Int64, comm: String) {
        self.pid = pid
        self.comm = comm
    }
}

/// The fields of one record that the report uses.
public struct ReportEvent: Sendable {
    public var ts: Int64
    public var kind: String
    public var reason: String?
    public var cause: String?
    public var port: Int?
    public var process: ReportProcess?
    public var client: ReportProcess?
    /// Events this record stands for: `count` for summary and lost records, else 1.
    public var count: UInt64
    public var firstTs: Int64
    public var lastTs: Int64
    public var hint: String?
    /// The whole record, kept only as a group's most recent example. Parsed
    /// from the line when asked for: a report reads millions of lines and
    /// shows a few of them, and building every line's tree (then freeing
    /// it) was most of `report`'s time (docs/benchmarks.md).
    public var raw: JSONValue {
        get { rawValue ?? rawLine.flatMap { JSONReader.parse($0) } ?? .null }
        set { rawValue = newValue; rawLine = nil }
    }
    var rawValue: JSONValue?
    var rawLine: [UInt8]?

    /// The fields `decode` reads; every other field of a line is validated
    /// and skipped by `decode(line:)`.
    static let decodedFields: Set<String> = ["v", "ts", "kind", "reason", "cause", "hint", "port", "count",
                                             "first_ts", "last_ts", "process", "client"]

    /// The name of a key `decode` reads, or nil: matched on the raw bytes by
    /// length, then content (no String, no allocation per key).
    static func decodedField(_ k: UnsafeBufferPointer<UInt8>) -> String? {
        func eq(_ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == k.count && memcmp(name.utf8Start, k.baseAddress!, k.count) == 0
        }
        switch k.count {
        case 1: return eq("v") ? "v" : nil
        case 2: return eq("ts") ? "ts" : nil
        case 4: return eq("kind") ? "kind" : eq("hint") ? "hint" : eq("port") ? "port" : nil
        case 5: return eq("cause") ? "cause" : eq("count") ? "count" : nil
        case 6: return eq("reason") ? "reason" : eq("client") ? "client" : nil
        case 7: return eq("process") ? "process" : eq("last_ts") ? "last_ts" : nil
        case 8: return eq("first_ts") ? "first_ts" : nil
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
        guard let tsString = tsValue.stringValue, let ts = RFC3339.parse(tsString) else {
            return .failure(.init("field 'ts' is not an RFC 3339 timestamp"))
        }
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
                return .success(ReportProcess(pid: p["pid"]!.intValue!, comm: p["comm"]?.stringValue ?? "?"))
            default: return .failure(.init("field '\(key)' is not a process object with a 'pid'"))
            }
        }

        let reason: String?, cause: String?, hint: String?
        let proc: ReportProcess?, client: ReportProcess?
        switch optionalString("reason") { case .success(let s): reason = s; case .failure(let e): return .failure(e) }
        switch optionalString("cause") { case .success(let s): cause = s; case .failure(let e): return .failure(e) }
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
            guard let c = v["count"] else { return .failure(.init("\(kind) record without required field 'count'")) }
            guard let n = c.intValue, n >= 0 else { return .failure(.init("field 'count' is not a non-negative integer")) }
            count = UInt64(n)
        }

        var first = ts, last = ts
        if kind == RecordKind.summary.rawValue {
            if let s = v["first_ts"]?.stringValue, let t = RFC3339.parse(s) { first = t }
            if let s = v["last_ts"]?.stringValue, let t = RFC3339.parse(s) { last = t }
            if first > last { swap(&first, &last) }
        }
        return .success(ReportEvent(ts: ts, kind: kind, reason: reason, cause: cause, port: port, process: proc,
                                    client: client, count: count, firstTs: first, lastTs: last, hint: hint,
                                    rawValue: v, rawLine: nil))
    }
}

public struct ReportLineError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
