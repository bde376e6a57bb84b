import Foundation
import Testing

/// README "Guarantees" for trace and record, against the real kernel: write
/// errors on standard output, a closed pipe, a second recorder and a
/// crashed one, a storm on a terminal. Refusals are real: connect() to a
/// closed loopback port inside a namespace this test creates.
@Suite("guarantees, end to end", .serialized, .enabled(if: Privileged.enabled))
struct GuaranteeTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// synsight running as a child, stderr to a file, stdout where the test says.
    final class Child {
        let process = Process()
        let errFile: URL

        init(_ args: [String], stdout: Any) throws {
            errFile = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-err-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: TraceSession.binary)
            process.arguments = args
            process.standardOutput = stdout
            process.standardError = try FileHandle(forWritingTo: errFile)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: errFile)
        }

        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
        var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

        func waitStarted() throws {
            let started = waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !process.isRunning }
            guard started, process.isRunning else { throw CommandFailure(description: "did not start: \(stderr)") }
        }

        /// Waits for the process to end on its own; SIGKILLs it after `timeout`.
        func waitExit(timeout: Double = 10) -> Bool {
            let ended = waitUntil(timeout: timeout) { !process.isRunning }
            if !ended { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return ended
        }
    }

    @Test("trace > /dev/full: one error line, status 1, and the summary counts what was not written",
          arguments: [["--json"], []])
    func traceToAFullDevice(format: [String]) throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        let trace = try Child(["trace", "--port", String(port), "--duration", "60"] + format, stdout: full)
        try trace.waitStarted()
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(trace.waitExit(), "trace went on after its output failed: \(trace.stderr)")
        #expect(trace.process.terminationStatus == 1, "\(trace.stderr)")
        #expect(trace.stderrLines.last == "synsight: error: cannot write to standard output: No space left on device (ENOSPC); "
            + "1 record not written (free space, or write elsewhere)", "\(trace.stderr)")
        let summary = try #require(trace.stderrLines.first { $0.hasPrefix("synsight: 1 event in ") }, "\(trace.stderr)")
        #expect(summary.hasSuffix("0 events lost in the ring buffer, 1 record not written to standard output"), "\(summary)")
    }

    @Test("explain > /dev/full (text and JSON): one error line and status 1, not the verdict's status")
    func explainToAFullDevice() throws {
        for format in [[], ["--json"]] {
            let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
            let explain = try Child(["explain", String(randomPort()), "--duration", "0"] + format, stdout: full)
            #expect(explain.waitExit(timeout: 30), "\(explain.stderr)")
            #expect(explain.process.terminationStatus == 1, "\(explain.stderr)")
            #expect(explain.stderrLines.last == "synsight: error: cannot write to standard output: No space left on device (ENOSPC)",
                    "\(explain.stderr)")
        }
    }

    @Test("trace --json > a file on a full disk: every record is either written whole or counted as not written")
    func traceToAFullDisk() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errFile = dir + ".stderr"
        _ = FileManager.default.createFile(atPath: errFile, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errFile) }
        // An 8 KiB tmpfs that exists only in this shell's mount namespace: a
        // few dozen lines fit, the write that fills it is cut short.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["-m", "--propagation", "private", "/bin/sh", "-c",
                       "mount -t tmpfs -o size=8k tmpfs '\(dir)' || exit 99; "
                       + "'\(TraceSession.binary)' trace --json --port \(port) --duration 60 > '\(dir)/out' 2> '\(errFile)'; "
                       + "echo status=$?; echo lines=$(tr -cd '\\n' < '\(dir)/out' | wc -c)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        var stderr: String { (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? "" }
        try #require(waitUntil(timeout: 20) { stderr.contains("synsight: tracing") }, "\(stderr)")
        try storm(ns, port: port, count: 100)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let fields = Dictionary(uniqueKeysWithValues: text.split(whereSeparator: \.isNewline).compactMap { line -> (String, Int)? in
            let kv = line.split(separator: "=")
            return kv.count == 2 ? (String(kv[0]), Int(kv[1].trimmingCharacters(in: .whitespaces)) ?? -1) : nil
        })
        #expect(fields["status"] == 1, "\(text) \(stderr)")
        let written = try #require(fields["lines"], "\(text)")
        let lines = stderr.split(separator: "\n").map(String.init)
        let summary = try #require(lines.first { $0.hasPrefix("synsight: ") && $0.contains(" events in ") }, "\(stderr)")
        let events = try #require(summary.range(of: #"(?<=^synsight: )\d+"#, options: .regularExpression)
            .flatMap { Int(summary[$0]) }, "\(summary)")
        let notWritten = try #require(summary.range(of: #"\d+(?= records? not written to standard output$)"#, options: .regularExpression)
            .flatMap { Int(summary[$0]) }, "\(summary)")
        #expect(written > 0 && notWritten > 0, "\(summary); \(written) lines written")
        // The trace ends at the failed write: under load the storm's tail may
        // still be in the ring buffer then and is not read. Every event it
        // did count is a line in the file or a record counted as not written,
        // and the summary is taken after the last of them.
        #expect(events <= 100, "\(summary)")
        #expect(written + notWritten == events, "\(summary); \(written) whole lines in the file")
        #expect(lines.last == "synsight: error: cannot write to standard output: No space left on device (ENOSPC); "
            + "\(notWritten) records not written (free space, or write elsewhere)", "\(stderr)")
    }

    @Test("trace into a closed pipe (| head) ends quietly with status 0")
    func traceIntoAClosedPipe() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let pipe = Pipe()
        let trace = try Child(["trace", "--json", "--port", String(port), "--duration", "60"], stdout: pipe)
        try trace.waitStarted()
        try pipe.fileHandleForReading.close()  // the reader is gone, as after `head -1`
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(trace.waitExit(), "trace went on writing into a closed pipe: \(trace.stderr)")
        #expect(trace.process.terminationStatus == 0, "\(trace.stderr)")
        #expect(!trace.stderr.contains("error"), "\(trace.stderr)")
    }

    @Test("a second recorder on a directory is refused; the lock does not outlive a SIGKILLed recorder")
    func recorderLockAcrossSIGKILL() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["record", "--dir", dir, "--port", String(port), "--aggregate", "0", "--flush-interval-ms", "50"]

        let first = try Child(args, stdout: FileHandle.nullDevice)
        try first.waitStarted()
        let second = try Child(args, stdout: FileHandle.nullDevice)
        #expect(second.waitExit(timeout: 20), "the second recorder ran: \(second.stderr)")
        #expect(second.process.terminationStatus == 1)
        #expect(second.stderrLines == ["synsight: error: cannot record to \(dir): another synsight record "
            + "(pid \(first.process.processIdentifier)) is writing there; stop it or use another --dir"], "\(second.stderr)")

        for _ in 0..<3 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        usleep(600_000)  // past the join window and a flush
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()

        // The kernel released the lock with the process: a new recorder starts.
        let third = try Child(args, stdout: FileHandle.nullDevice)
        try third.waitStarted()
        for _ in 0..<2 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        usleep(600_000)
        kill(third.process.processIdentifier, SIGTERM)
        #expect(third.waitExit())
        #expect(third.process.terminationStatus == 0, "\(third.stderr)")
        let text = (try? String(contentsOfFile: dir + "/synsight.jsonl", encoding: .utf8)) ?? ""
        let refusals = text.split(separator: "\n").filter { $0.contains("\"kind\":\"refusal\"") && $0.contains("\"port\":\(port),") }
        #expect(refusals.count == 5, "\(text)")
    }

    @Test("record: a symlink planted at the active file is refused, and the summary is one truthful line")
    func recordSummaryAfterARefusedSymlink() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + ".victim"
        try Data("keep\n".utf8).write(to: URL(fileURLWithPath: victim))
        defer { try? FileManager.default.removeItem(atPath: victim) }
        let rec = try Child(["record", "--dir", dir, "--port", String(port), "--aggregate", "0", "--flush-interval-ms", "50"],
                            stdout: FileHandle.nullDevice)
        try rec.waitStarted()
        // logrotate-style: the file is moved away, but a symlink appears in its place before SIGHUP.
        try FileManager.default.moveItem(atPath: dir + "/synsight.jsonl", toPath: dir + "/moved.jsonl")
        try FileManager.default.createSymbolicLink(atPath: dir + "/synsight.jsonl", withDestinationPath: victim)
        kill(rec.process.processIdentifier, SIGHUP)
        #expect(waitUntil(timeout: 10) { rec.stderr.contains("recording paused") }, "\(rec.stderr)")
        for _ in 0..<3 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        usleep(600_000)
        kill(rec.process.processIdentifier, SIGTERM)
        #expect(rec.waitExit())
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep\n")
        let summary = rec.stderrLines.filter { $0.range(of: #"^synsight: \d+ events? in "#, options: .regularExpression) != nil }
        #expect(summary.count == 1, "\(rec.stderr)")
        #expect(summary.first?.hasPrefix("synsight: 3 events in ") == true, "\(rec.stderr)")
        #expect(summary.first?.hasSuffix("s, 0 events lost in the ring buffer, 3 records not written to \(dir)") == true, "\(rec.stderr)")
        #expect(!rec.stderr.contains("could not be written"), "\(rec.stderr)")
    }

    /// `count` refusals from one client in well under a second.
    func storm(_ ns: NetNS, port: Int, count: Int = 40) throws {
        try sh(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import socket
            for _ in range(\(count)):
                s = socket.socket()
                try: s.connect(("127.0.0.1", \(port)))
                except OSError: pass
                s.close()
            """])
    }

    /// Lines printed one by one, and the count the folded lines carry.
    func tally(_ text: String, port: Int) -> (single: Int, folded: Int, foldedLines: Int) {
        var single = 0, folded = 0, foldedLines = 0
        for line in text.split(whereSeparator: \.isNewline) where line.contains("REFUSAL") && line.contains("port \(port) ") {
            if let r = line.range(of: "… ×") {
                foldedLines += 1
                folded += Int(line[r.upperBound...].prefix { $0.isNumber }) ?? 0
                #expect(line.hasSuffix(" more in the last 1s"), "\(line)")
            } else {
                single += 1
            }
        }
        return (single, folded, foldedLines)
    }

    @Test("trace --fold 3: a storm is at most 3 lines per second plus one folded line; the totals, and --count, count all 40")
    func foldedStorm() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let trace = try Child(["trace", "--fold", "3", "--count", "40", "--port", String(port)],
                              stdout: try FileHandle(forWritingTo: out))
        try trace.waitStarted()
        try storm(ns, port: port)
        // --count 40 ends the trace once the folded line has carried the rest of the 40.
        #expect(trace.waitExit(timeout: 10), "trace did not stop after 40 events: \(trace.stderr)")
        #expect(trace.process.terminationStatus == 0)
        let text = try String(contentsOf: out, encoding: .utf8)
        let t = tally(text, port: port)
        #expect(t.single + t.folded == 40, "\(text)")
        #expect(t.foldedLines >= 1 && t.single <= 3 * (t.foldedLines + 1), "\(text)")
        #expect(trace.stderr.contains("synsight: 40 events in "), "\(trace.stderr)")
    }

    @Test("on a terminal trace folds by default; --json and --no-fold stay one line per event")
    func terminalFoldsByDefault() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        for (json, noFold) in [(false, false), (true, false), (false, true)] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-tty-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            // script(1) gives synsight a pseudo-terminal as standard output and copies it to `out`.
            let command = "exec '\(TraceSession.binary)' trace \(json ? "--json " : "")\(noFold ? "--no-fold " : "")"
                + "--port \(port) --duration 5"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            p.arguments = ["-qfec", command, out.path]
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
            #expect(waitUntil(timeout: 20) { ((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains("synsight: tracing") })
            try storm(ns, port: port)
            #expect(waitUntil(timeout: 15) { !p.isRunning })
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if json {
                let lines = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("{") && $0.contains("\"port\":\(port),") }
                #expect(lines.count == 40, "\(text)")
                #expect(!text.contains("\"kind\":\"summary\""), "\(text)")
            } else if noFold {
                let t = tally(text, port: port)
                #expect(t.single == 40 && t.foldedLines == 0, "\(text)")
            } else {
                let t = tally(text, port: port)
                #expect(t.single + t.folded == 40, "\(text)")
                #expect(t.foldedLines >= 1, "no folded line on a terminal: \(text)")
            }
        }
    }
}
