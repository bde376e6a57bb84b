import SynsightBase
/// JSON Lines output, written by hand: every refusal in a storm is encoded
/// here, and a generic encoder (Foundation's JSONEncoder) allocates a
/// dictionary, boxes every value and sorts keys per record. This appends
/// straight into one reusable byte buffer, keeps the contract's field order,
/// and escapes untrusted strings (process names, paths) per RFC 8259.
public enum JSONLines {
    /// Appends `record` as one line (with the trailing newline) to `out`.
    public static func append(_ record: Record, to out: inout [UInt8]) {
        append(record.json, to: &out)
        out.append(0x0A)
    }

    public static func line(_ record: Record) -> String {
        var out: [UInt8] = []
        append(record, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): appendInt(i, to: &out)
        case .number(let t): out.append(contentsOf: t.utf8)
        case .string(let s): appendString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(v, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                append(v, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var v = value.magnitude
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { buf in
            while v > 0 {
                buf[n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(buf[i]) }
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// RFC 8259 string escaping. Swift strings are valid Unicode, so invalid
    /// UTF-8 from the kernel has already become U+FFFD; control characters,
    /// quotes and backslashes are escaped, and so are DEL, C1 controls,
    /// U+2028/2029 and bidi overrides, so a line is safe to paste into
    /// JavaScript or print on a terminal.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in s.unicodeScalars {
            switch scalar.value {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                // C0/C1 controls and bidi overrides: valid JSON either way,
                // escaped so that `cat` of a log cannot drive a terminal.
                let v = scalar.value
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"),
                                        hexDigits[Int(v >> 12 & 0xF)], hexDigits[Int(v >> 8 & 0xF)],
                                        hexDigits[Int(v >> 4 & 0xF)], hexDigits[Int(v & 0xF)]])
            default:
                out.append(contentsOf: String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// RFC 3339 timestamps in UTC with nanoseconds, without Foundation.
public enum RFC3339 {
    public static func format(nanosecondsSinceEpoch ns: Int64) -> String {
        // Floor division that cannot overflow (Int64.min included).
        var secs = ns / 1_000_000_000
        var nanos = ns % 1_000_000_000
        if nanos < 0 { secs -= 1; nanos += 1_000_000_000 }
        return format(secondsSinceEpoch: secs, nanos: nanos)
    }

    /// A whole second (or a second and `nanos`), for times computed in
    /// seconds (a report's bucket edges) that need not fit in Int64 nanoseconds.
    public static func format(secondsSinceEpoch secs: Int64, nanos: Int64 = 0) -> String {
        var days = secs / 86400
        var sod = secs % 86400
        if sod < 0 { days -= 1; sod += 86400 }
        let (y, m, d) = civil(fromDays: days)
        func pad(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(sod / 3600, 2)):\(pad(sod / 60 % 60, 2)):\(pad(sod % 60, 2)).\(pad(nanos, 9))Z"
    }

    /// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// Escaping for a terminal: untrusted strings must not carry control
/// sequences (ESC, CR, backspace) to the user's terminal.
public enum TerminalText {
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar.value {
            case 0x00..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                // C0/C1 controls and bidi overrides.
                let hex = String(scalar.value, radix: 16)
                out += scalar.value < 0x100 ? "\\x" + (hex.count == 1 ? "0" + hex : hex) : "\\u{\(hex)}"
            case 0x5C:
                out += "\\\\"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
