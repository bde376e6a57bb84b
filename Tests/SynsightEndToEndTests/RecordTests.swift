import Foundation
import Testing

/// `synsight record` against the real kernel: refusals generated in a test
/// namespace, the recorder killed or stopped, the files checked line by line.
@Suite("record, end to end", .serialized, .enabled(if: Privileged.enabled))
struct RecordTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    final class Recording {
        let dir: String
        let process = Process()
        let errFile: URL

        init(_ extra: [String]) throws {
            dir = tempDir()
            errFile = URL(fileURLWithPath: dir + ".stderr")
            _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: TraceSession.binary)
            process.arguments = ["record", "--dir", dir, "--flush-interval-ms", "50"] + extra
            process.standardError = try FileHandle(forWritingTo: errFile)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let started = waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !process.isRunning }
            guard started, process.isRunning else { throw CommandFailure(description: "record did not start: \(stderr)") }
        }

        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }

        /// Every line of every file, each required to parse.
        func records() -> [[String: Any]] {
            var out: [[String: Any]] = []
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl") }
            RecordSchema.check(files: names.map { dir + "/" + $0 }, "synsight record")
            for name in names {
                let text = (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? ""
                #expect(text.isEmpty || text.hasSuffix("\n"), "\(name) does not end with a whole line")
                for line in text.split(separator: "\n") {
                    guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                        Issue.record("corrupt line in \(name): \(line)")
                        continue
                    }
                    out.append(obj)
                }
            }
            return out
        }

        func remove() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(at: errFile)
        }
    }

    func refusals(_ recs: [[String: Any]], ns: NetNS, port: Int) -> Int {
        recs.reduce(0) { n, r in
            guard (r["netns"] as? Int) == ns.inode, (r["port"] as? Int) == port else { return n }
            if (r["kind"] as? String) == "refusal" { return n + 1 }
            if (r["kind"] as? String) == "summary" { return n + ((r["count"] as? Int) ?? 0) }
            return n
        }
    }

    @Test("SIGTERM flushes everything; SIGKILL mid-stream leaves only whole lines")
    func stopAndKill() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let rec = try Recording(["--aggregate", "0"])
        defer { rec.remove() }
        for _ in 0..<10 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        kill(rec.process.processIdentifier, SIGTERM)
        rec.process.waitUntilExit()
        #expect(rec.process.terminationStatus == 0, "\(rec.stderr)")
        #expect(refusals(rec.records(), ns: ns, port: port) == 10)

        // Again, but killed without warning while refusals keep coming.
        let rec2 = try Recording(["--aggregate", "0"])
        defer { rec2.remove() }
        for _ in 0..<10 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port + 1) }
        usleep(600_000)  // past the join window and a flush
        kill(rec2.process.processIdentifier, SIGKILL)
        rec2.process.waitUntilExit()
        #expect(refusals(rec2.records(), ns: ns, port: port + 1) == 10)
        // A restart on the same directory finds nothing to repair or repairs a partial line.
        let rec3 = try Recording(["--aggregate", "0", "--duration", "1"])
        defer { rec3.remove() }
        rec3.process.waitUntilExit()
        #expect(rec3.process.terminationStatus == 0)
    }

    @Test("a storm is folded into summary records and no refusal is lost from the totals")
    func stormIsSummarized() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let rec = try Recording(["--aggregate", "3", "--port", String(port)])
        defer { rec.remove() }
        // One client process making 40 refusals as fast as it can.
        try sh(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import socket
            for _ in range(40):
                s = socket.socket()
                try: s.connect(("127.0.0.1", \(port)))
                except OSError: pass
                s.close()
            """])
        usleep(1_500_000)  // past the aggregation window
        kill(rec.process.processIdentifier, SIGTERM)
        rec.process.waitUntilExit()
        let recs = rec.records()
        #expect(refusals(recs, ns: ns, port: port) == 40)
        let summaries = recs.filter { ($0["kind"] as? String) == "summary" && ($0["port"] as? Int) == port }
        #expect(!summaries.isEmpty)
        for s in summaries {
            #expect(s["first_ts"] is String && s["last_ts"] is String)
            #expect((s["reason"] as? String) == "no_listener")
        }
        #expect(recs.filter { ($0["kind"] as? String) == "refusal" && ($0["port"] as? Int) == port }.count < 40)
    }

    @Test("a full disk pauses recording, counts what could not be written, and resumes with a lost record")
    func diskFull() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errFile = URL(fileURLWithPath: dir + ".stderr")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        // A 64 KiB tmpfs that exists only in the recorder's own mount namespace.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["-m", "--propagation", "private", "/bin/sh", "-c",
                       "mount -t tmpfs -o size=64k tmpfs '\(dir)' && exec '\(TraceSession.binary)' record --dir '\(dir)' "
                       + "--aggregate 0 --flush-interval-ms 50 --port \(port)"]
        p.standardError = try FileHandle(forWritingTo: errFile)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
        #expect(waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !p.isRunning }, "\(stderr)")
        let inside = "/proc/\(p.processIdentifier)/root\(dir)"

        // Fill the filesystem, then refuse 20 connections: they cannot all be written.
        let filler = inside + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        let chunk = Data(repeating: 0x41, count: 4096)
        while (try? fh.write(contentsOf: chunk)) != nil {}
        try? fh.close()
        for _ in 0..<20 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        #expect(waitUntil(timeout: 10) { stderr.contains("recording paused") }, "\(stderr)")

        // Space returns; the next refusals are written after a `lost` record.
        try FileManager.default.removeItem(atPath: filler)
        for _ in 0..<5 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        #expect(waitUntil(timeout: 10) { stderr.contains("works again") }, "\(stderr)")
        usleep(500_000)
        let text = (try? String(contentsOfFile: inside + "/synsight.jsonl", encoding: .utf8)) ?? ""
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        RecordSchema.check(lines: text, "synsight record (disk full)")
        var written = 0
        var lost = 0
        for line in text.split(separator: "\n") {
            let obj = try #require(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "corrupt: \(line)")
            if (obj["kind"] as? String) == "refusal" && (obj["port"] as? Int) == port { written += 1 }
            if (obj["kind"] as? String) == "lost" { lost += (obj["count"] as? Int) ?? 0 }
        }
        #expect(lost > 0)
        #expect(written + lost == 25, "written \(written), lost \(lost)")
    }
}
