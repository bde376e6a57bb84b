import SynsightBase
/// A strict, Foundation-free JSON reader for one JSON Lines record (RFC 8259).
/// Generalizes `FirewallJSON` for untrusted input: raw control characters in
/// strings are rejected, `\u` surrogate pairs are joined (a lone surrogate
/// becomes U+FFFD), nesting depth is capped, and integers that do not fit in
/// an Int64 are kept, like numbers with a fraction or an exponent, as their
/// text (`JSONValue.number`): never read as some other integer.
public enum JSONReader {
    public static let maxDepth = 64

    public static func parse(_ text: String) -> JSONValue? {
        var t = text
        return t.withUTF8 { parse($0) }
    }

    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBufferPointer { parse($0) }
    }

    /// Parses exactly one JSON value (surrounding whitespace allowed).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> JSONValue? {
        var p = Parser(b: bytes)
        p.skipSpace()
        guard let v = p.value(depth: 0) else { return nil }
        p.skipSpace()
        return p.i == bytes.count ? v : nil
    }

    package struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        package var i = 0

        package init(b: UnsafeBufferPointer<UInt8>, i: Int = 0) {
            self.b = b
            self.i = i
        }

        package mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard i + n <= b.count else { return false }
            let p = s.utf8Start
            for k in 0..<n where b[i + k] != p[k] { return false }
            i += n
            return true
        }

        package mutating func value(depth: Int) -> JSONValue? {
            guard depth < JSONReader.maxDepth, i < b.count else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var fields: [(String, JSONValue)] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard let k = string() else { return nil }
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    skipSpace()
                    guard let v = value(depth: depth + 1) else { return nil }
                    fields.append((k, v))
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONValue] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    guard let v = value(depth: depth + 1) else { return nil }
                    items.append(v)
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "\""):
                return string().map { .string($0) }
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default:
                return number()
            }
        }

        /// Accepts exactly what `value(depth:)` accepts, without building
        /// the value: `synsight report` validates every line in full but
        /// keeps only a few of its fields (ReportEvent.decode(line:)).
        package mutating func skipValue(depth: Int) -> Bool {
            guard depth < JSONReader.maxDepth, i < b.count else { return false }
            switch b[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = b[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                let isObject = close == UInt8(ascii: "}")
                i += 1
                skipSpace()
                if i < b.count, b[i] == close { i += 1; return true }
                while true {
                    skipSpace()
                    if isObject {
                        guard skipString() else { return false }
                        skipSpace()
                        guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                        i += 1
                        skipSpace()
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    skipSpace()
                    guard i < b.count else { return false }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == close { i += 1; return true }
                    return false
                }
            case UInt8(ascii: "\""): return skipString()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number() != nil
            }
        }

        /// Accepts exactly the strings `string()` accepts (raw control
        /// characters and unknown or short escapes are refused).
        mutating func skipString() -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
            i += 1
            while i < b.count {
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { return true }
                if c < 0x20 { return false }
                if c != UInt8(ascii: "\\") { continue }
                guard i < b.count else { return false }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "n"), UInt8(ascii: "t"),
                     UInt8(ascii: "r"), UInt8(ascii: "b"), UInt8(ascii: "f"):
                    continue
                case UInt8(ascii: "u"):
                    guard hex4() != nil else { return false }
                default:
                    return false
                }
            }
            return false
        }

        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        /// An RFC 8259 number: `.int` when it is an integer that fits in an
        /// Int64, else `.number` with its text.
        package mutating func number() -> JSONValue? {
            let start = i
            var neg = false
            if i < b.count, b[i] == UInt8(ascii: "-") { neg = true; i += 1 }
            guard i < b.count, isDigit(b[i]) else { return nil }
            // No leading zeros ("01").
            if b[i] == 0x30, i + 1 < b.count, isDigit(b[i + 1]) { return nil }
            var v: Int64 = 0
            var overflow = false
            while i < b.count, isDigit(b[i]) {
                let d = Int64(b[i] - 0x30)
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = neg ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
                if o1 || o2 { overflow = true }
                v = s
                i += 1
            }
            var fractional = false
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                guard i < b.count, isDigit(b[i]) else { return nil }
                while i < b.count, isDigit(b[i]) { i += 1 }
                fractional = true
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < b.count, isDigit(b[i]) else { return nil }
                while i < b.count, isDigit(b[i]) { i += 1 }
                fractional = true
            }
            if overflow || fractional {
                return .number(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
            }
            return .int(v)
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= b.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        package mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            // Fast path: no escapes.
            let start = i
            while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
            if i < b.count, b[i] == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            var out: [UInt8] = Array(b[start..<i])
            while i < b.count {
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if c < 0x20 { return nil }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard i < b.count else { return nil }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    guard var code = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(code) {
                        // High surrogate: join with a following low surrogate.
                        let save = i
                        if i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                            i += 2
                            if let low = hex4(), (0xDC00..<0xE000).contains(low) {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                i = save
                                code = 0xFFFD
                            }
                        } else {
                            code = 0xFFFD
                        }
                    } else if (0xDC00..<0xE000).contains(code) {
                        code = 0xFFFD
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(code) ?? "\u{FFFD}")).utf8)
                default:
                    return nil
                }
            }
            return nil
        }
    }
}
