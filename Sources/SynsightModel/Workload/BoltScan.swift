/// JSON values in a BoltDB file, found by scanning rather than as a
/// database (libpod's `bolt_state.db`, libnetwork's `local-kv.db`): BoltDB
/// keeps each value contiguous (in its leaf page, or in consecutive
/// overflow pages), and both stores keep JSON objects whose first key is
/// known. Copy-on-write leaves older copies in free pages: callers read
/// only what never changes, or decide between the copies. Written by hand:
/// no BoltDB reader exists for Swift, and this needs none of its structure.
public enum BoltScan {
    /// A JSON object longer than this is not one of the stores'.
    static let maxObject = 4 << 20

    /// The JSON objects of `bytes` that start with `opening`: from each
    /// occurrence to its matching brace, strings and escapes skipped.
    public static func objects(in bytes: [UInt8], opening: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        let first = opening[0]
        while i + opening.count <= bytes.count {
            guard bytes[i] == first, bytes[i..<(i + opening.count)].elementsEqual(opening) else { i += 1; continue }
            if let end = objectEnd(bytes, from: i) {
                out.append(Array(bytes[i...end]))
                i = end + 1
            } else {
                i += opening.count
            }
        }
        return out
    }

    /// The index of the brace that closes the object opening at `start`.
    static func objectEnd(_ b: [UInt8], from start: Int) -> Int? {
        var depth = 0, inString = false, escaped = false
        var i = start
        let limit = min(b.count, start + maxObject)
        while i < limit {
            let c = b[i]
            if inString {
                if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
            } else if c == 0x22 {
                inString = true
            } else if c == 0x7B {
                depth += 1
            } else if c == 0x7D {
                depth -= 1
                if depth == 0 { return i }
            } else if c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D {
                return nil  // a page header or binary: not one contiguous JSON value
            }
            i += 1
        }
        return nil
    }
}
