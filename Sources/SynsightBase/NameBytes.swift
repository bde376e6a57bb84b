/// The one place where raw bytes that name something — a process's comm
/// from BPF or /proc, an executable path from /proc/<pid>/exe, an SELinux
/// context — become a Swift String. The kernel gives them as bytes, not
/// necessarily UTF-8 (comm is any 15 bytes, cut anywhere, even inside a
/// character); decoding them as UTF-8 would turn what is not into U+FFFD and
/// lose it. Instead every byte stays recoverable, in this escaped form:
///
/// - well-formed UTF-8 (RFC 3629) is kept as it is, except:
/// - a byte that is not part of well-formed UTF-8 becomes `\xHH`
///   (two lowercase hex digits);
/// - a C0 control byte (0x00–0x1F) or DEL (0x7F) becomes `\xHH` too;
/// - a backslash becomes `\\`, so the form reads back unambiguously.
///
/// `bytes(_:)` reverses it. JSON, terminal and HTML escaping still apply on
/// output, on top of this. Hand-written rather than with the standard
/// library's UTF-8 parser because that one reports the length of an
/// ill-formed sequence but not its bytes, which are what must be kept.
public enum NameBytes {
    /// A bounded C string from a fixed array of a kernel record (a comm, an
    /// interface name, an SELinux context): up to the first NUL, or all of it.
    public static func string<T>(cField field: T) -> String {
        withUnsafeBytes(of: field) { raw in string(raw.prefix { $0 != 0 }) }
    }

    public static func string<C: Collection>(_ raw: C) -> String where C.Element == UInt8 {
        // Fast path (the ring-buffer consumer decodes a comm per event):
        // plain printable ASCII needs no escape.
        if raw.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) {
            return String(decoding: raw, as: UTF8.self)
        }
        let b = Array(raw)
        var out = ""
        out.reserveCapacity(b.count + 8)
        var run = 0  // start of the well-formed bytes not yet copied
        var i = 0
        while i < b.count {
            let n = sequenceLength(b, at: i)
            if n == 0 || (n == 1 && isEscaped(b[i])) {
                out += String(decoding: b[run..<i], as: UTF8.self)
                out += b[i] == UInt8(ascii: "\\") ? "\\\\" : hex(b[i])
                i += 1
                run = i
            } else {
                i += n
            }
        }
        out += String(decoding: b[run..<i], as: UTF8.self)
        return out
    }

    /// The bytes an escaped name stands for; nil when `s` is not in the
    /// escaped form (a lone backslash, a bad `\x` escape).
    public static func bytes(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            guard u[i] == UInt8(ascii: "\\") else { out.append(u[i]); i += 1; continue }
            guard i + 1 < u.count else { return nil }
            if u[i + 1] == UInt8(ascii: "\\") { out.append(u[i + 1]); i += 2; continue }
            guard u[i + 1] == UInt8(ascii: "x"), i + 3 < u.count,
                  let hi = hexValue(u[i + 2]), let lo = hexValue(u[i + 3]) else { return nil }
            out.append(hi << 4 | lo)
            i += 4
        }
        return out
    }

    static func isEscaped(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\\")
    }

    static let digits = Array("0123456789abcdef".utf8)

    package static func hex(_ byte: UInt8) -> String {
        String(decoding: [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]],
               as: UTF8.self)
    }

    package static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The length of the well-formed UTF-8 sequence at `i` (Unicode Table
    /// 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or 0.
    static func sequenceLength(_ b: [UInt8], at i: Int) -> Int {
        func cont(_ k: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
            i + k < b.count && range.contains(b[i + k])
        }
        switch b[i] {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0: return cont(1, 0xA0...0xBF) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xED: return cont(1, 0x80...0x9F) && cont(2) ? 3 : 0
        case 0xF0: return cont(1, 0x90...0xBF) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4: return cont(1, 0x80...0x8F) && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }
}
