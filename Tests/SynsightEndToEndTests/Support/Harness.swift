import Foundation
import Synchronization
import Testing

/// Root-only end-to-end tests skip (with the reason) for a developer without
/// root, but the project's test command sets SYNSIGHT_REQUIRE_ROOT=1, which
/// turns that skip into a failure: CI can never pass by skipping them.
enum Privileged {
    static let isRoot = geteuid() == 0
    static let required = ProcessInfo.processInfo.environment["SYNSIGHT_REQUIRE_ROOT"] == "1"
    /// Enable the suite when root, or when root is required (so it runs and fails).
    static let enabled = isRoot || required

    static func check() throws {
        try #require(isRoot, "end-to-end tests need root (BPF, network namespaces); SYNSIGHT_REQUIRE_ROOT=1 forbids skipping them")
    }
}

struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a command to completion; throws with its output if it fails.
@discardableResult
func sh(_ args: [String], allowFailure: Bool = false) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let out = String(decoding: data, as: UTF8.self)
    if p.terminationStatus != 0 && !allowFailure {
        throw CommandFailure(description: "`\(args.joined(separator: " "))` exited \(p.terminationStatus): \(out)")
    }
    return out
}

/// Polls `condition` until it holds or `timeout` passes.
func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

/// A network namespace created for one test and always deleted.
final class NetNS {
    static let prefix = "synsight-e2e-"
    /// Suites run in parallel: every namespace (and veth) gets a unique number.
    static let counter = Atomic<Int>(0)
    let name: String
    let inode: Int
    let number: Int
    /// A name given to another's namespace (a container's): removing it
    /// removes the name only.
    let attached: Bool

    init() throws {
        number = NetNS.counter.add(1, ordering: .relaxed).newValue
        name = "\(NetNS.prefix)\(getpid())-\(number)"
        attached = false
        try sh(["ip", "netns", "add", name])
        try sh(["ip", "-n", name, "link", "set", "lo", "up"])
        inode = try Self.inode(name)
    }

    /// A name for the network namespace of `pid` (`ip netns attach`), so
    /// peers run in a container's namespace as in a test's own.
    init(attachTo pid: Int) throws {
        number = NetNS.counter.add(1, ordering: .relaxed).newValue
        name = "\(NetNS.prefix)\(getpid())-\(number)"
        attached = true
        try sh(["ip", "netns", "attach", name, String(pid)])
        inode = try Self.inode(name)
    }

    static func inode(_ name: String) throws -> Int {
        var st = stat()
        guard stat("/run/netns/\(name)", &st) == 0 else {
            throw CommandFailure(description: "no /run/netns/\(name)")
        }
        return Int(st.st_ino)
    }

    /// Kills whatever still runs inside, then deletes the namespace.
    func remove() {
        if !attached, let pids = try? sh(["ip", "netns", "pids", name], allowFailure: true) {
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        _ = try? sh(["ip", "netns", "del", name], allowFailure: true)
    }

    /// Removes namespaces left by an earlier run that was killed: only those
    /// whose creating test process (the PID in the name) is gone, so suites
    /// running in parallel keep theirs.
    static func removeStale() {
        guard let list = try? sh(["ip", "netns", "list"], allowFailure: true) else { return }
        for line in list.split(separator: "\n") {
            let n = String(line.split(separator: " ").first ?? "")
            guard n.hasPrefix(prefix) else { continue }
            let owner = n.dropFirst(prefix.count).split(separator: "-").first.flatMap { Int32($0) }
            if let owner, owner == getpid() || kill(owner, 0) == 0 { continue }
            _ = try? sh(["ip", "netns", "del", n], allowFailure: true)
        }
    }

    /// Loads an nft ruleset inside this namespace (never the host's).
    func loadNft(_ ruleset: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-nft-\(UUID().uuidString)")
        try ruleset.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try sh(["ip", "netns", "exec", name, "nft", "-f", file.path])
    }

    /// Connects two namespaces with a veth pair: self gets .1, other .2, in 198.18.0.0/24
    /// (the benchmarking range; traffic never leaves these two namespaces).
    /// Returns the veth's names: `local` in this namespace, `peer` in `other`.
    @discardableResult
    func link(to other: NetNS, subnet: String = "198.18.0") throws -> (local: String, peer: String) {
        let a = "ssa\(getpid() % 100000)x\(number)", b = "ssb\(getpid() % 100000)x\(number)"
        try sh(["ip", "link", "add", a, "netns", name, "type", "veth", "peer", "name", b, "netns", other.name])
        try sh(["ip", "-n", name, "addr", "add", "\(subnet).1/24", "dev", a])
        try sh(["ip", "-n", other.name, "addr", "add", "\(subnet).2/24", "dev", b])
        try sh(["ip", "-n", name, "link", "set", a, "up"])
        try sh(["ip", "-n", other.name, "link", "set", b, "up"])
        return (a, b)
    }
}

/// A test peer (Support/peer.py) running inside a namespace.
final class Peer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("peer.py").path
    let process = Process()
    let outFile: URL

    /// Starts `peer.py listen ...` and waits for "ready".
    convenience init(listenIn ns: NetNS, addr: String, port: Int, extra: [String] = []) throws {
        try self.init(runIn: ns, ["listen", addr, String(port)] + extra)
    }

    /// Starts `peer.py <args>` inside `ns` and waits until its output starts with `readyPrefix`.
    /// `script`: another peer script of Support/.
    init(runIn ns: NetNS, _ args: [String], readyPrefix: String = "ready", timeout: Double = 10,
         script: String = Peer.script) throws {
        outFile = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-peer-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", ns.name, "/usr/bin/python3", script] + args
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = process.standardOutput
        try process.run()
        let ready = waitUntil(timeout: timeout) { output.hasPrefix(readyPrefix) || !process.isRunning }
        guard ready, process.isRunning else {
            throw CommandFailure(description: "peer \(args.joined(separator: " ")) did not start: \(output)")
        }
    }

    var output: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }
    /// `ip netns exec` execs the interpreter: the PID is the listener's own.
    var pid: Int { Int(process.processIdentifier) }

    func killHard() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(at: outFile)
    }

    /// One connect() from inside `ns`; returns the connecting PID and errno.
    /// `source`: bind to this local address first; `extra`: more peer.py options.
    /// `cgroupDir`: a cgroup directory the client is moved into before it starts.
    static func connect(from ns: NetNS, addr: String, port: Int, timeout: Double = 3,
                        source: String? = nil, extra: [String] = [], cgroupDir: String? = nil,
                        command: String = "connect") throws -> (pid: Int, errno: Int) {
        // Moved before `ip netns exec`, which mounts a sysfs of the namespace's own over /sys.
        let moved = cgroupDir.map { ["/bin/sh", "-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, $0] } ?? []
        let out = try sh(moved + ["ip", "netns", "exec", ns.name, "/usr/bin/python3", script, command, addr, String(port),
                          "--timeout", String(timeout)] + (source.map { ["--source", $0] } ?? []) + extra)
        // The answer is the line "<pid> <errno>"; stderr shares the pipe, so
        // a warning from `ip netns exec` or python may surround it.
        for line in out.split(separator: "\n").reversed() {
            let f = line.split(separator: " ").compactMap { Int($0) }
            if f.count == 2 && line.split(separator: " ").count == 2 { return (f[0], f[1]) }
        }
        throw CommandFailure(description: "bad connect output: \(out)")
    }
}

/// A JSON Lines record as parsed by Foundation (independent of synsight's writer).
struct JSONRecord: CustomStringConvertible {
    let raw: [String: Any]
    let line: String

    subscript(_ key: String) -> Any? { raw[key] }
    func string(_ k: String) -> String? { raw[k] as? String }
    func int(_ k: String) -> Int? { raw[k] as? Int }
    func object(_ k: String) -> [String: Any]? { raw[k] as? [String: Any] }
    func pid(_ k: String) -> Int? { object(k)?["pid"] as? Int }
    var evidence: [String: Any] { object("evidence") ?? [:] }
    var description: String { line }
}

/// `synsight trace --json` running as a child process for one test.
final class TraceSession {
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["SYNSIGHT_BIN"] { return b }
        // The test bundle is built next to the synsight executable.
        var dir = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
            .deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("synsight").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "synsight"
    }

    let process = Process()
    let outFile: URL
    let errFile: URL
    /// The records were checked against the schema (at stop, or at deinit).
    var validated = false

    /// `environment`: added to synsight's own. `launcher`: a command that
    /// ends by exec'ing its arguments (synsight's), e.g. to start it in namespaces of its own.
    init(_ args: [String], environment: [String: String] = [:], launcher: [String] = []) throws {
        let tmp = FileManager.default.temporaryDirectory
        outFile = tmp.appendingPathComponent("synsight-out-\(UUID().uuidString)")
        errFile = tmp.appendingPathComponent("synsight-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: launcher.first ?? TraceSession.binary)
        // The suites run in parallel and some make refusal storms on the
        // host (tens of thousands a second). A trace that chose no folding
        // folds them as `record` does (past 100 identical records per key
        // and second), so another suite's storm cannot fill its pipeline
        // queue and cost it its own events (reported as `lost`).
        let folding = args.contains { ["--fold", "--no-fold", "--no-kernel-fold"].contains($0) }
        process.arguments = (launcher.isEmpty ? [] : launcher.dropFirst() + [TraceSession.binary])
            + ["trace", "--json"] + (folding ? [] : ["--fold", "100"]) + args
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        try process.run()
        let started = waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !process.isRunning }
        guard started, process.isRunning else {
            throw CommandFailure(description: "synsight trace did not start: \(stderr)")
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        if !validated { RecordSchema.check(files: [outFile.path], "synsight trace --json") }
        try? FileManager.default.removeItem(at: outFile)
        try? FileManager.default.removeItem(at: errFile)
    }

    var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }

    /// Every complete line so far, parsed. A line that does not parse is a test failure.
    var records: [JSONRecord] {
        // A line still being written (no newline yet) is not complete: read
        // while the trace writes, it would not parse.
        let text = stdout
        let complete = text.lastIndex(of: "\n").map { text[...$0] } ?? ""
        var out: [JSONRecord] = []
        for line in complete.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                Issue.record("unparsable JSON line: \(line)")
                continue
            }
            out.append(JSONRecord(raw: obj, line: String(line)))
        }
        return out
    }

    /// Waits for a record matching `match` (refusals are printed after the
    /// client join window), then returns it.
    func waitForRecord(timeout: Double = 10, _ match: (JSONRecord) -> Bool) -> JSONRecord? {
        var found: JSONRecord?
        _ = waitUntil(timeout: timeout) {
            found = records.first(where: match)
            return found != nil
        }
        return found
    }

    /// Ctrl-C; returns the summary printed on stderr. Every record of the
    /// session is then validated against the schema (failures point here, at
    /// the caller's line).
    @discardableResult
    func stop(sourceLocation: SourceLocation = #_sourceLocation) -> String {
        kill(process.processIdentifier, SIGINT)
        if !waitUntil(timeout: 10, { !process.isRunning }) {
            Issue.record("synsight trace did not exit within 10 s of SIGINT")
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        RecordSchema.check(files: [outFile.path], "synsight trace --json", sourceLocation: sourceLocation)
        validated = true
        return stderr
    }
}

func randomPort() -> Int { Int.random(in: 20000...29999) }

/// A random hex tag that keeps one test's names (units, images, containers) apart.
func randomTag() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16) }

/// A fresh temporary directory.
func tempDir() -> String {
    var template = Array((NSTemporaryDirectory() + "synsight-e2e-rec-XXXXXX").utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

/// The published JSON Lines contract, docs/schema/synsight-record-v1.schema.json:
/// every record a test gets from `trace --json`, `record` or `explain --json`
/// is validated against it with check-jsonschema (scripts/check-records.py,
/// one run per call: its start-up is ~0.5 s). A record that does not match
/// fails the test with the record and the schema's message.
enum RecordSchema {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/../../.."

    /// Validates JSON Lines files (.jsonl or .jsonl.gz).
    static func check(files: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard !files.isEmpty else { return }
        let py = repo + "/.venv-tests/bin/python"
        guard FileManager.default.isExecutableFile(atPath: py) else {
            Issue.record("\(py) is missing: run scripts/install-deps.sh (it installs check-jsonschema)", sourceLocation: sourceLocation)
            return
        }
        let p = Process()
        // Through /usr/bin/env: Process resolves symlinks, and a venv's python must start by its own path.
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [py, repo + "/scripts/check-records.py"] + files
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch {
            Issue.record("check-records.py did not start: \(error)", sourceLocation: sourceLocation)
            return
        }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            Issue.record("records of \(what) do not match docs/schema/synsight-record-v1.schema.json:\n\(out)",
                         sourceLocation: sourceLocation)
        }
    }

    /// Validates JSON Lines text; lines that are not JSON objects are skipped
    /// only when `objectsOnly` (output mixed with stderr).
    static func check(lines text: String, _ what: String, objectsOnly: Bool = false,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = text.split(separator: "\n").filter { !objectsOnly || $0.hasPrefix("{") }
        guard !lines.isEmpty else { return }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-records-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        guard FileManager.default.createFile(atPath: file.path, contents: Data((lines.joined(separator: "\n") + "\n").utf8)) else {
            Issue.record("cannot write \(file.path) to validate the records of \(what)", sourceLocation: sourceLocation)
            return
        }
        check(files: [file.path], what, sourceLocation: sourceLocation)
    }

    /// Validates JSON values already parsed (explain's embedded records).
    static func check(objects: [Any], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = objects.compactMap { try? JSONSerialization.data(withJSONObject: $0) }.map { String(decoding: $0, as: UTF8.self) }
        if lines.count != objects.count { Issue.record("\(what): a record is not a JSON object", sourceLocation: sourceLocation) }
        check(lines: lines.joined(separator: "\n"), what, sourceLocation: sourceLocation)
    }
}

/// A shell loop (for `sh -c`) that waits up to `seconds` until the connect()
/// from `ns` to `port` has retransmitted its SYN: its socket's timer counts
/// it (a fixed delay races the client's start on a loaded machine).
func waitForSYNRetransmitShell(in ns: NetNS, port: Int, seconds: Int = 10) -> String {
    """
    for i in $(seq \(seconds * 20)); do
      ip netns exec \(ns.name) ss -Htno state syn-sent "dport = :\(port)" | grep -q 'timer:(on,[^,]*,[1-9]' && break
      sleep 0.05
    done

    """
}
