import SynsightBase
import SynsightModel

/// An nft `tcp flags` match, as `nft -j` prints it, tested against a
/// segment's flags. The forms nft and iptables-nft write:
/// - `tcp flags syn` (op `in`: any of the named flags set),
/// - `tcp flags == 0x12`, `tcp flags { syn, syn | ack }` (the whole byte),
/// - `tcp flags & rst == rst`, `tcp flags syn / fin,syn,rst,ack`
///   (iptables' `--tcp-flags RST RST` and `--syn`: the masked byte).
package enum TCPFlagsMatch {
    static let bits: [String: UInt8] = [
        "fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80,
    ]

    /// The match's left side is `tcp flags`, masked or not.
    package static func isFlags(_ m: JSONValue) -> Bool { operand(m["left"]) != nil }

    /// Does a segment with `flags` pass the match? nil: not a `tcp flags`
    /// match, or a form not understood.
    package static func passes(_ m: JSONValue, flags: UInt8) -> Bool? {
        guard let (mask, masked) = operand(m["left"]), let right = m["right"] else { return nil }
        let x = flags & mask
        let op = m["op"]?.stringValue ?? "=="
        if case .array(let items)? = right["set"] {
            let values = items.map(value)
            guard !values.contains(nil) else { return nil }
            let member = values.contains(x)
            switch op {
            case "==", "in": return member
            case "!=": return !member
            default: return nil
            }
        }
        guard let v = value(right) else { return nil }
        switch op {
        case "in": return x & v != 0
        case "==": return x == v
        // Unmasked, nft versions differ on whether `!=` is the whole byte or
        // "none of these flags": not guessed.
        case "!=": return masked ? x != v : nil
        default: return nil
        }
    }

    /// The left side's mask, and whether it was masked (`tcp flags & m`).
    static func operand(_ left: JSONValue?) -> (UInt8, Bool)? {
        guard let left else { return nil }
        if isFlagsPayload(left) { return (0xFF, false) }
        guard case .array(let and)? = left["&"], and.count == 2, isFlagsPayload(and[0]), let mask = value(and[1]) else {
            return nil
        }
        return (mask, true)
    }

    static func isFlagsPayload(_ v: JSONValue) -> Bool {
        guard let pl = v["payload"] else { return false }
        return pl["protocol"]?.stringValue == "tcp" && pl["field"]?.stringValue == "flags"
    }

    /// A flag name, a number, a list of names, or `a | b`: their bits.
    static func value(_ v: JSONValue) -> UInt8? {
        if let s = v.stringValue { return bits[s] ?? UInt8(s) }
        if let i = v.intValue { return UInt8(exactly: i) }
        let items: [JSONValue]
        if case .array(let a) = v { items = a } else if case .array(let a)? = v["|"] { items = a } else { return nil }
        var all: UInt8 = 0
        for item in items {
            guard let b = value(item) else { return nil }
            all |= b
        }
        return all
    }
}
