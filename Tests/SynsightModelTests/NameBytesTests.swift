import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel

/// Raw name bytes (comm, exe, contexts) to a String: every byte recoverable.
@Suite("NameBytes: the escaped form of untrusted names")
struct NameBytesTests {
    func roundTrips(_ bytes: [UInt8]) -> Bool { NameBytes.bytes(NameBytes.string(bytes)) == bytes }

    @Test("bytes that are not UTF-8 become \\xHH, each one, and come back")
    func invalidBytes() {
        #expect(NameBytes.string([0x66, 0xFF, 0x6F]) == #"f\xffo"#)
        #expect(NameBytes.string([0x80, 0xFE, 0xC0, 0xAF]) == #"\x80\xfe\xc0\xaf"#, "lone continuation, 0xFE, overlong /")
        #expect(NameBytes.string([0xED, 0xA0, 0x80]) == #"\xed\xa0\x80"#, "a UTF-16 surrogate encoded as UTF-8")
        #expect(NameBytes.string([0xF4, 0x90, 0x80, 0x80]) == #"\xf4\x90\x80\x80"#, "above U+10FFFF")
        // comm is cut at 15 bytes, even inside a character: 語 is E8 AA 9E.
        #expect(NameBytes.string(Array("日本".utf8) + [0xE8, 0xAA]) == #"日本\xe8\xaa"#)
        #expect(NameBytes.string([0xE8, 0xAA, 0x41]) == #"\xe8\xaaA"#, "the byte after a cut sequence is kept")
        for b in [[0x66, 0xFF, 0x6F], [0xED, 0xA0, 0x80], Array("日本".utf8) + [0xE8, 0xAA]] as [[UInt8]] {
            #expect(roundTrips(b), "\(b)")
        }
    }

    @Test("a backslash is doubled, so a name that spells \\x41 is not the byte 0x41")
    func backslash() {
        #expect(NameBytes.string([0x5C]) == #"\\"#)
        #expect(NameBytes.bytes(#"\\"#) == [0x5C])
        let spelled = Array(#"\x41"#.utf8)
        #expect(NameBytes.string(spelled) == #"\\x41"#)
        #expect(NameBytes.string([0x41]) == "A")
        #expect(roundTrips(spelled) && roundTrips([0x5C]) && roundTrips([0x5C, 0xFF, 0x5C]))
        for bad in [#"\"#, #"a\"#, #"\x4"#, #"\xg1"#, #"\n"#] {
            #expect(NameBytes.bytes(bad) == nil, "\(bad) is not in the escaped form")
        }
    }

    @Test("well-formed UTF-8 is kept as it is", arguments: ["nginx", "postgres: writer", "Größe", "日本語", "emoji😀", "café-ü", "spelled\u{FFFD}", ""])
    func validUTF8(name: String) {
        #expect(NameBytes.string(Array(name.utf8)) == name)
        #expect(roundTrips(Array(name.utf8)))
    }

    @Test("control bytes become \\xHH; C1 and bidi characters stay for the output escaping")
    func controls() {
        #expect(NameBytes.string(Array("a\u{1B}[2J\n\t\u{7F}".utf8)) == #"a\x1b[2J\x0a\x09\x7f"#)
        #expect(NameBytes.string([0x00, 0x1F]) == #"\x00\x1f"#)
        let c1 = "nel\u{85}evil\u{202E}"
        #expect(NameBytes.string(Array(c1.utf8)) == c1)
        #expect(TerminalText.escape(NameBytes.string(Array(c1.utf8))) == #"nel\x85evil\u{202e}"#)
    }

    @Test("any bytes: the string reads back to them, has no control character, and distinct bytes give distinct strings")
    func anyBytes() {
        var rng = SystemRandomNumberGenerator()
        // Keyed by the string's UTF-8, not the String: Swift compares
        // strings by canonical equivalence, so U+0340 and U+0300 (the bytes
        // CD 80 and CC 80) are equal Strings though distinct text.
        var seen: [[UInt8]: [UInt8]] = [:]
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...16, using: &rng)
            // Bias towards the interesting bytes: backslash, x, hex digits, UTF-8 leads and continuations.
            let pool: [UInt8] = [0x5C, 0x78, 0x41, 0x66, 0x30, 0x00, 0x1B, 0x7F, 0x80, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF]
            let bytes = (0..<n).map { _ in Bool.random(using: &rng) ? pool.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng) }
            let s = NameBytes.string(bytes)
            #expect(NameBytes.bytes(s) == bytes, "\(bytes) -> \(s)")
            #expect(!s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(bytes) -> \(s)")
            // No U+FFFD made by decoding: only one the bytes spelled (EF BF BD, well-formed
            // UTF-8, kept as it is; about one run in 25 draws it).
            let spelled = bytes.indices.filter { bytes[$0...].starts(with: [0xEF, 0xBF, 0xBD]) }.count
            #expect(s.unicodeScalars.filter { $0.value == 0xFFFD }.count == spelled, "\(bytes) -> \(s)")
            if let other = seen[Array(s.utf8)] { #expect(other == bytes, "\(other) and \(bytes) both give \(s)") }
            seen[Array(s.utf8)] = bytes
        }
    }

    @Test("a comm from the kernel: escaped form in the record, JSON-escaped in JSON Lines, terminal-escaped in text")
    func throughTheOutputs() throws {
        let raw: [UInt8] = [0x70, 0x79, 0xFF, 0x5C, 0x1B, 0x5B, 0x33, 0x31, 0x6D]  // p y 0xFF \ ESC [31m
        guard case .listen(let l) = try EventDecoder.decode(listenRecord(comm: raw)) else {
            Issue.record("expected listen")
            return
        }
        #expect(l.task.comm == #"py\xff\\\x1b[31m"#)
        #expect(NameBytes.bytes(l.task.comm) == raw)

        let record = fullRecord(comm: l.task.comm)
        let line = JSONLines.line(record)
        #expect(line.contains(#""comm":"py\\xff\\\\\\x1b[31m""#), "\(line)")
        guard case .object(let obj)? = JSONReader.parse(String(line.dropLast())),
              case .object(let process)? = obj.first(where: { $0.0 == "process" })?.1,
              case .string(let comm)? = process.first(where: { $0.0 == "comm" })?.1 else {
            Issue.record("the line does not read back: \(line)")
            return
        }
        #expect(NameBytes.bytes(comm) == raw, "the bytes are recoverable from the JSON value")

        let text = TextFormat.line(record)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0xFFFD })
        #expect(text.contains(#"py\\xff\\\\\\x1b[31m[900]"#), "\(text)")
    }
}
