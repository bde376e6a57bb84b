import CSynsightFuzz
import Glibc
import SynsightBase
import SynsightModel
import SynsightReport
import SynsightMetrics

// Fuzz targets for everything that parses untrusted input: recordings
// (JSON Lines through `report`'s reader, plain and gzip) and the metrics
// endpoint's HTTP request head.
//
// Built two ways from this one file:
// - by scripts/fuzz.sh, with libFuzzer's coverage instrumentation and
//   `-DSYNSIGHT_FUZZ`: `SynsightFuzz <target> [libFuzzer options] [corpus]`
//   runs libFuzzer on the target;
// - by the normal `swift build`: `SynsightFuzz <target> <file-or-dir>...`
//   replays inputs once each (the regression corpus in Tests/Fixtures/fuzz),
//   exiting non-zero if one crashes or breaks a check.

/// One fuzz target: what to do with one input.
enum FuzzTarget: String, CaseIterable {
    /// A plain recording through ReportSession, rendered in every format.
    case jsonl
    /// A compressed recording through ReportSession's gzip path.
    case gzip
    /// A metrics request head through HTTPExchange.
    case http

    func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .jsonl: Self.recording(data)
        case .gzip: Self.compressedRecording(data)
        case .http: Self.requestHead(data)
        }
    }

    /// Besides "no crash, no hang": the fast line decoder and the full parse
    /// agree on every line, a parsed value survives being written and read
    /// back, and the JSON report is valid JSON.
    static func recording(_ data: UnsafeRawBufferPointer) {
        let bytes = data.bindMemory(to: UInt8.self)
        var start = 0
        while start <= bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            checkLine(UnsafeBufferPointer(rebasing: bytes[start..<end]))
            start = end + 1
        }
        var session = ReportSession()
        session.read(bytes: data, name: "fuzz.jsonl")
        render(session)
    }

    static func checkLine(_ line: UnsafeBufferPointer<UInt8>) {
        let fast = ReportEvent.decode(line: line)
        let parsed = JSONReader.parse(line)
        let full = parsed.map(ReportEvent.decode) ?? .failure(ReportLineError("invalid JSON"))
        switch (fast, full) {
        case let (.success(a), .success(b)):
            check(a.ts == b.ts && a.count == b.count && a.firstTs == b.firstTs && a.lastTs == b.lastTs
                  && a.port == b.port && a.kind == b.kind, "decode(line:) and decode(parse(line)) read different fields")
        case let (.failure(a), .failure(b)):
            check(a == b, "decode(line:) and decode(parse(line)) disagree: '\(a.message)' vs '\(b.message)'")
        default:
            check(false, "decode(line:) and decode(parse(line)) disagree on whether the line is valid")
        }
        if let v = parsed {
            var out: [UInt8] = []
            JSONLines.append(v, to: &out)
            check(JSONReader.parse(out) == v, "a parsed value does not survive being written and read back")
        }
    }

    static func compressedRecording(_ data: UnsafeRawBufferPointer) {
        var session = ReportSession()
        session.read(compressed: data, name: "fuzz.jsonl.gz")
        render(session)
    }

    static func render(_ session: ReportSession) {
        let report = session.builder.report()
        for format in ReportFormat.allCases {
            let text = report.render(format)
            if format == .json { check(JSONReader.parse(text) != nil, "report --format json is not valid JSON") }
        }
        _ = session.diagnostics
    }

    static func requestHead(_ data: UnsafeRawBufferPointer) {
        let head = HTTPExchange.parseHead(Array(data.bindMemory(to: UInt8.self)))
        if case let .request(method, path) = head {
            check(!method.isEmpty && method.utf8.allSatisfy { (0x41...0x5A).contains($0) }, "method is not A-Z")
            // Bytes, not Characters: "/" followed by a combining mark is one
            // Character, and String.hasPrefix("/") is false for it (the
            // first input this target found was that, in this check).
            check(path.utf8.first == UInt8(ascii: "/") || path.utf8.elementsEqual("*".utf8), "path is neither /... nor *")
        }
        _ = HTTPExchange.response(to: head) { Array("metric 1\n".utf8) }
    }

    /// A broken invariant is a crash, so libFuzzer keeps the input.
    static func check(_ ok: Bool, _ what: @autoclosure () -> String) {
        if !ok { fatalError("fuzz check failed: \(what())") }
    }
}

/// The target libFuzzer's callback runs (a C callback cannot capture it).
nonisolated(unsafe) var selectedTarget = FuzzTarget.jsonl

@main
struct SynsightFuzz {
    static func main() {
        var args = CommandLine.arguments
        guard args.count >= 2, let target = FuzzTarget(rawValue: args[1]) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            say("usage: SynsightFuzz \(names) [libFuzzer options | inputs to replay...]")
            exit(64)
        }
        selectedTarget = target
        args.remove(at: 1)
        #if SYNSIGHT_FUZZ
        exit(fuzz(args))
        #else
        exit(replay(Array(args.dropFirst())))
        #endif
    }

    #if SYNSIGHT_FUZZ
    static func fuzz(_ args: [String]) -> Int32 {
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        var argc = Int32(args.count)
        return cArgs.withUnsafeMutableBufferPointer { buf in
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buf.baseAddress
            return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
                selectedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }
        }
    }
    #endif

    /// Runs every file named (or in a directory named) once.
    static func replay(_ paths: [String]) -> Int32 {
        var files: [String] = []
        for p in paths {
            if let d = opendir(p) {
                while let e = readdir(d) {
                    let name = withUnsafePointer(to: &e.pointee.d_name) {
                        String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
                    }
                    if !name.hasPrefix(".") { files.append(p + "/" + name) }
                }
                closedir(d)
            } else {
                files.append(p)
            }
        }
        for f in files.sorted() {
            guard let data = readAll(f) else {
                say("SynsightFuzz: cannot read \(f): \(String(cString: strerror(errno)))")
                return 1
            }
            data.withUnsafeBytes { selectedTarget.run($0) }
        }
        print("replayed \(files.count) input(s) through \(selectedTarget.rawValue)")
        return 0
    }

    static func say(_ line: String) {
        let b = Array((line + "\n").utf8)
        _ = b.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return out }
            out += buf[0..<n]
        }
    }
}
