import Foundation
import Testing

/// `synsight record --compress` rotating a tiny file many times a second
/// while thousands of real refusals arrive: every file, plain or gzipped,
/// parses; no refusal is missing from the totals; retention holds.
@Suite("record: rotation and compression under load", .serialized, .enabled(if: Privileged.enabled))
struct RotateUnderLoadTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let generated = 3000

    struct Files {
        var plain: [String] = []
        var gz: [String] = []
        var tmp: [String] = []
        var rotatedBases: Set<String> = []
    }

    func list(_ dir: String) -> Files {
        var f = Files()
        for n in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            if n.hasSuffix(".tmp") { f.tmp.append(n) }
            else if n.hasSuffix(".jsonl.gz") { f.gz.append(n) }
            else if n.hasSuffix(".jsonl") { f.plain.append(n) }
            if n.hasPrefix("synsight-") && !n.hasSuffix(".tmp") {
                f.rotatedBases.insert(n.replacingOccurrences(of: ".gz", with: ""))
            }
        }
        return f
    }

    /// Every line of every file, decompressed by the system's gzip (not by
    /// synsight), each required to be a whole JSON object.
    func records(_ dir: String, _ files: Files) throws -> [[String: Any]] {
        var out: [[String: Any]] = []
        RecordSchema.check(files: (files.plain + files.gz).map { dir + "/" + $0 }, "synsight record --compress")
        for name in files.plain + files.gz {
            let path = dir + "/" + name
            let text = name.hasSuffix(".gz") ? try sh(["gzip", "-dc", "--", path])
                                             : ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
            #expect(text.isEmpty || text.hasSuffix("\n"), "\(name) does not end with a whole line")
            for line in text.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    Issue.record("corrupt line in \(name): \(line.prefix(200))")
                    continue
                }
                out.append(obj)
            }
        }
        return out
    }

    /// Refusals to `port` from `ns`: individual records count 1, summaries their `count`.
    func totals(_ recs: [[String: Any]], ns: NetNS, port: Int) -> (individual: Int, summarized: Int, summaries: Int, lost: Int) {
        var t = (individual: 0, summarized: 0, summaries: 0, lost: 0)
        for r in recs {
            if (r["kind"] as? String) == "lost" { t.lost += (r["count"] as? Int) ?? 0; continue }
            guard (r["netns"] as? Int) == ns.inode, (r["port"] as? Int) == port,
                  (r["reason"] as? String) == "no_listener" else { continue }
            if (r["kind"] as? String) == "refusal" { t.individual += 1 }
            if (r["kind"] as? String) == "summary" { t.summarized += (r["count"] as? Int) ?? 0; t.summaries += 1 }
        }
        return t
    }

    /// Starts one process making `count` refusals as fast as it can connect
    /// to a closed port; it exits 0 only if every connect was refused.
    func startRefusing(_ count: Int, from ns: NetNS, port: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import socket
            n = 0
            for _ in range(\(count)):
                s = socket.socket()
                try: s.connect(("127.0.0.1", \(port)))
                except ConnectionRefusedError: n += 1
                s.close()
            assert n == \(count), n
            """]
        try p.run()
        return p
    }

    func refuse(_ count: Int, from ns: NetNS, port: Int) throws {
        let p = try startRefusing(count, from: ns, port: port)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "the refusal generator failed")
    }

    func record(_ dir: String, port: Int, maxFiles: Int, errFile: URL) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TraceSession.binary)
        p.arguments = ["record", "--dir", dir, "--max-file-size", "4096", "--max-files", String(maxFiles), "--compress",
                       "--aggregate", "1000", "--flush-interval-ms", "50", "--port", String(port)]
        p.standardError = try FileHandle(forWritingTo: errFile)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let ok = waitUntil(timeout: 20) {
            ((try? String(contentsOf: errFile, encoding: .utf8)) ?? "").contains("synsight: tracing") || !p.isRunning
        }
        guard ok, p.isRunning else {
            throw CommandFailure(description: "record did not start: \((try? String(contentsOf: errFile, encoding: .utf8)) ?? "")")
        }
        return p
    }

    @Test("thousands of refusals, a 4 KiB rotation size, --compress: every file parses and the totals are exact")
    func everyRefusalIsInSomeFile() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errFile = URL(fileURLWithPath: dir + ".stderr")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        let p = try record(dir, port: port, maxFiles: 100_000, errFile: errFile)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }

        try refuse(Self.generated, from: ns, port: port)
        // Compression keeps up while recording: .gz files appear before the stop.
        #expect(waitUntil(timeout: 10) { list(dir).gz.count >= 10 }, "\(list(dir).gz.count) .gz files")
        usleep(1_500_000)  // past the client-join and aggregation windows and a flush
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let stderr = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 0, "\(stderr)")
        #expect(!stderr.contains("cannot compress"), "\(stderr)")

        let files = list(dir)
        #expect(files.tmp.isEmpty, "left behind: \(files.tmp)")
        #expect(files.gz.count >= 10, "only \(files.gz.count) compressed files")
        #expect(files.rotatedBases.count >= 20, "only \(files.rotatedBases.count) rotations")
        let t = totals(try records(dir, files), ns: ns, port: port)
        // `lost` records carry no port: other load on the machine can fill
        // the ring too, so they are only named if ours are missing.
        #expect(t.individual + t.summarized == Self.generated,
                "\(t.individual) individual + \(t.summarized) in \(t.summaries) summaries != \(Self.generated) generated (\(t.lost) lost in the ring buffer)")
        #expect(t.summaries > 0, "the storm was not summarized")

        // synsight's own report reads the same directory, .gz and all, to the same total.
        let report = try sh([TraceSession.binary, "report", "--format", "json", "--port", String(port), dir])
        let obj = try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any]
        #expect((obj?["totals"] as? [String: Any])?["events"] as? Int == Self.generated)
    }

    @Test("retention under load: --max-files counts compressed files")
    func retentionHoldsWhileCompressing() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errFile = URL(fileURLWithPath: dir + ".stderr")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        let p = try record(dir, port: port, maxFiles: 4, errFile: errFile)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }

        // Sampled while it rotates, and for 0.5 s after the generator (the
        // writer still drains then; a loaded CI machine once ran the whole
        // storm within 5 samples): never more than 4 rotated files (a file
        // and its .gz count once).
        let gen = try startRefusing(Self.generated, from: ns, port: port)
        var most = 0, samples = 0
        var drainUntil: Date?
        while drainUntil.map({ Date() < $0 }) ?? true {
            most = max(most, list(dir).rotatedBases.count)
            samples += 1
            usleep(10_000)
            if drainUntil == nil && !gen.isRunning { drainUntil = Date().addingTimeInterval(0.5) }
        }
        #expect(gen.terminationStatus == 0)
        #expect(samples > 5)
        #expect(most <= 4, "saw \(most) rotated files with --max-files 4")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)

        let files = list(dir)
        #expect(files.rotatedBases.count == 4, "\(files.rotatedBases.sorted())")
        #expect(files.tmp.isEmpty)
        #expect(!files.gz.isEmpty)
        // What is kept parses; older files were pruned, so fewer refusals remain.
        let t = totals(try records(dir, files), ns: ns, port: port)
        #expect(t.individual + t.summarized > 0)
        #expect(t.individual + t.summarized < Self.generated)
    }
}
