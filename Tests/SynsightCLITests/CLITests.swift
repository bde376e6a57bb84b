import Foundation
import Testing

// Runs the built `synsight` executable. Everything here is rejected (or
// answered) by argument parsing and validation, before any BPF is loaded,
// so these tests need no privileges and never start tracing.

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String

    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

enum CLIError: Error, CustomStringConvertible {
    case binaryNotFound(searched: [String])
    case timedOut([String])

    var description: String {
        switch self {
        case .binaryNotFound(let dirs):
            return "the synsight executable was not found next to the test bundle; searched: \(dirs.joined(separator: ", ")). "
                + "Build it first (swift build --build-tests builds every product)."
        case .timedOut(let args):
            return "synsight \(args.joined(separator: " ")) did not exit within the time limit"
        }
    }
}

/// The `synsight` executable in the build directory holding this test
/// bundle: walk up from the bundle and from argv[0].
func synsightExecutable() throws -> URL {
    let fm = FileManager.default
    var starts: [URL] = [Bundle.main.bundleURL, Bundle.main.executableURL?.deletingLastPathComponent()].compactMap { $0 }
    if let argv0 = CommandLine.arguments.first {
        let url = URL(fileURLWithPath: argv0, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath))
        starts.append(url.deletingLastPathComponent())
    }
    var searched: [String] = []
    for start in starts {
        var dir = start.standardizedFileURL
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("synsight")
            searched.append(dir.path)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue,
               fm.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
    }
    throw CLIError.binaryNotFound(searched: searched)
}

/// Runs synsight with `args`, output captured through files (no pipe
/// deadlock), killed if it runs longer than `timeout` seconds.
func synsight(_ args: String..., timeout: TimeInterval = 30) throws -> RunResult {
    try run(args, timeout: timeout)
}

/// `stdoutPath`: standard output goes there instead (e.g. /dev/full; then
/// `RunResult.stdout` is empty).
func run(_ args: [String], timeout: TimeInterval = 30, stdoutPath: String? = nil) throws -> RunResult {
    try runProcess(try synsightExecutable(), args, environment: ["COLUMNS": "100"], timeout: timeout,
                   stdoutPath: stdoutPath, label: args)
}

/// Runs `executable` with stdin from /dev/null and stdout/stderr captured in
/// files (no pipe to deadlock on), killed after `timeout` seconds: a hang is
/// a failure, not a stuck suite. `environment` is added to this process's.
func runProcess(_ executable: URL, _ args: [String], environment: [String: String], timeout: TimeInterval,
                stdoutPath: String? = nil, label: [String]) throws -> RunResult {
    let fm = FileManager.default
    let dir = fm.temporaryDirectory.appendingPathComponent("synsight-cli-\(UUID().uuidString)")
    try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? fm.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("stdout")
    let errURL = dir.appendingPathComponent("stderr")
    _ = fm.createFile(atPath: outURL.path, contents: nil)
    _ = fm.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: stdoutPath.map { URL(fileURLWithPath: $0) } ?? outURL)
    let err = try FileHandle(forWritingTo: errURL)

    let p = Process()
    p.executableURL = executable
    p.arguments = args
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = out
    p.standardError = err
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if p.isRunning {
        p.terminate()
        p.waitUntilExit()
        throw CLIError.timedOut(label)
    }
    p.waitUntilExit()
    try out.close()
    try err.close()
    return RunResult(status: p.terminationStatus,
                     stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                     stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// ArgumentParser's exit code for usage and validation errors (EX_USAGE).
let usageError: Int32 = 64

@Suite("synsight CLI")
struct CLITests {
    @Test func executableIsFound() throws {
        let exe = try synsightExecutable()
        #expect(exe.lastPathComponent == "synsight")
    }

    @Test func topLevelHelpListsSubcommands() throws {
        let r = try synsight("--help")
        #expect(r.status == 0)
        #expect(r.stdout.contains("USAGE: synsight <subcommand>"))
        #expect(r.stdout.range(of: #"(?m)^\s+trace\s"#, options: .regularExpression) != nil)
        #expect(r.stdout.range(of: #"(?m)^\s+doctor\s"#, options: .regularExpression) != nil)
        #expect(r.stdout.contains("--version"))
        #expect(r.stderr.isEmpty)
    }

    @Test func helpSubcommandMatchesTraceHelp() throws {
        let viaFlag = try synsight("trace", "--help")
        let viaHelp = try synsight("help", "trace")
        #expect(viaHelp.status == 0)
        #expect(viaHelp.stdout == viaFlag.stdout)
    }

    @Test func traceHelpListsItsOptions() throws {
        let r = try synsight("trace", "--help")
        #expect(r.status == 0)
        for option in ["--json", "--duration <seconds>", "--count <n>", "--port <port>", "--reset-hook <hook>",
                       "--join-window-ms <ms>", "--verbose"] {
            #expect(r.stdout.contains(option), "trace --help does not mention \(option)")
        }
        #expect(r.stdout.contains("USAGE: synsight trace"))
        #expect(r.stdout.contains("needs root"))
        #expect(r.stderr.isEmpty)
    }

    @Test func doctorHelp() throws {
        let r = try synsight("doctor", "--help")
        #expect(r.status == 0)
        #expect(r.stdout.contains("USAGE: synsight doctor"))
    }

    /// The test switches are options, hidden from --help (shown by --help-hidden).
    @Test(arguments: ["trace", "record", "explain", "doctor"])
    func testSwitchesAreHiddenOptions(command: String) throws {
        let help = try synsight(command, "--help")
        #expect(help.status == 0)
        #expect(!help.stdout.contains("--force-hook"), "\(command) --help shows a hidden option")
        let hidden = try synsight(command, "--help-hidden")
        for option in ["--force-hook <area=hook>", "--log-level <level>", "--pod-log-dir <dir>"] {
            #expect(hidden.stdout.contains(option), "\(command) --help-hidden does not mention \(option)")
        }
    }

    @Test func versionPrintsAVersion() throws {
        let r = try synsight("--version")
        #expect(r.status == 0)
        let version = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$"#, options: .regularExpression) != nil,
                "not a version: \(version)")
        #expect(r.stdout.hasSuffix("\n"))
        #expect(r.stdout.filter { $0 == "\n" }.count == 1)
    }

    /// Invocations rejected before any BPF is loaded, and the text the error
    /// line must contain (the option it is about).
    @Test(arguments: [
        (["trace", "--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["trace", "--port", "70000"], "--port must be between 1 and 65535, got 70000"),
        (["trace", "--port", "65536"], "--port must be between 1 and 65535, got 65536"),
        (["trace", "--port=-1"], "--port must be between 1 and 65535, got -1"),
        (["trace", "--duration=-1"], "got -1.0"),
        (["trace", "--duration", "1e11"], "--duration must be a positive number of seconds up to 31622400"),
        (["trace", "--duration", "0"], "got 0.0"),
        (["trace", "--duration", "inf"], "--duration must be a positive number of seconds"),
        (["trace", "--duration", "nan"], "--duration must be a positive number of seconds"),
        (["trace", "--count", "0"], "--count must be a positive number, got 0"),
        (["trace", "--count=-3"], "--count must be a positive number, got -3"),
        (["trace", "--reset-hook", "bogus"], "--reset-hook must be one of tcp_send_reset, fentry, kprobe, kfree_skb; got 'bogus'"),
        (["trace", "--force-hook", "syscall=classic"], "--force-hook takes area=hook, one of reset=tcp_send_reset|fentry|kprobe|kfree_skb, "
            + "syscall=tracepoint|raw, overflow=kprobe, connect=inet_sock_set_state, resetttl=kprobe; got 'syscall=classic'"),
        (["doctor", "--force-hook", "overflow"], "--force-hook takes area=hook"),
        (["record", "--dir", "/nonexistent", "--force-hook", "nat=kprobe"], "got 'nat=kprobe'"),
        (["trace", "--log-level", "loud"], "--log-level must be one of trace, debug, info, notice, warning, error, critical; got 'loud'"),
        (["trace", "--join-window-ms", "10001"], "--join-window-ms must be between 0 and 10000, got 10001"),
        (["trace", "--join-window-ms=-1"], "--join-window-ms must be between 0 and 10000, got -1"),
        (["trace", "--port", "http"], "--port"),
        (["trace", "--duration", "soon"], "--duration"),
        (["trace", "--count", "1.5"], "--count"),
        (["trace", "--no-such-option"], "--no-such-option"),
        (["no-such-command"], "no-such-command"),
    ])
    func invalidArgumentsFail(args: [String], message: String) throws {
        let r = try run(args)
        #expect(r.status == usageError, "exit status \(r.status) for \(args): \(r.stderr)")
        #expect(r.stdout.isEmpty, "nothing on stdout on error, got: \(r.stdout)")
        let first = try #require(r.stderrLines.first, "no error message for \(args)")
        #expect(first.hasPrefix("Error: "), "first stderr line: \(first)")
        #expect(first.contains(message), "error line for \(args) is: \(first)")
    }

    /// A negative number after a space is the option's value (not a
    /// "Missing value" for an option it looks like): the error says what is
    /// wrong with it.
    @Test(arguments: [
        (["trace", "--duration", "-1"], "--duration must be a positive number of seconds up to 31622400 (one year), got -1.0"),
        (["trace", "--count", "-1"], "--count must be a positive number, got -1"),
        (["trace", "--port", "-1"], "--port must be between 1 and 65535, got -1"),
        (["trace", "--join-window-ms", "-5"], "--join-window-ms must be between 0 and 10000, got -5"),
        (["trace", "--fold", "-2"], "--fold must be at least 1 (--no-fold prints every event), got -2"),
        (["trace", "--metrics-max-ports", "-1"], "--metrics-max-ports must be between 1 and 10000, got -1"),
        (["record", "--dir", "/nonexistent", "--max-files", "-1"], "--max-files must be at least 1, got -1"),
        (["record", "--dir", "/nonexistent", "--aggregate", "-1"], "--aggregate must be 0 or more, got -1"),
        (["record", "--dir", "/nonexistent", "--flush-interval-ms", "-1"], "--flush-interval-ms must be between 10 and 60000, got -1"),
        (["record", "--dir", "/nonexistent", "--max-age", "-1d"], "--max-age must be a positive duration (e.g. 3600, 30m, 12h, 7d), got '-1d'"),
        (["record", "--dir", "/nonexistent", "--max-file-size", "-1"], "--max-file-size must be at least 4096 bytes (e.g. 64M), got '-1'"),
        (["explain", "8080", "--duration", "-1"], "--duration must be between 0 and 3600 seconds, got -1.0"),
    ])
    func negativeValueAfterSpaceIsAValue(args: [String], message: String) throws {
        let r = try run(args)
        #expect(r.status == usageError)
        #expect(r.stderrLines.first == "Error: \(message)", "for \(args): \(r.stderr)")
    }

    /// Numbers too large for the option (or for 64 bits) say so and give the
    /// maximum, instead of claiming they are too small.
    @Test(arguments: [
        (["record", "--dir", "/nonexistent", "--max-file-size", "99999999999G"], "--max-file-size is too large: at most 1024G, got '99999999999G'"),
        (["record", "--dir", "/nonexistent", "--max-file-size", "99999999999999999999"], "--max-file-size is too large: at most 1024G, got '99999999999999999999'"),
        (["record", "--dir", "/nonexistent", "--max-file-size", "1025G"], "--max-file-size is too large: at most 1024G, got '1025G'"),
        (["record", "--dir", "/nonexistent", "--max-age", "99999999999999999d"], "--max-age is too large: at most 36500d, got '99999999999999999d'"),
        (["record", "--dir", "/nonexistent", "--max-file-size", "12Q"], "--max-file-size must be at least 4096 bytes (e.g. 64M), got '12Q'"),
        (["trace", "--fold", "3", "--no-fold"], "--fold and --no-fold cannot be used together"),
    ])
    func outOfRangeValuesSayWhatIsWrong(args: [String], message: String) throws {
        let r = try run(args)
        #expect(r.status == usageError)
        #expect(r.stderrLines.first == "Error: \(message)", "for \(args): \(r.stderr)")
    }

    @Test func seventeenDistinctPortsFail() throws {
        let args = ["trace"] + (1...17).flatMap { ["--port", String(8000 + $0)] }
        let r = try run(args)
        #expect(r.status == usageError)
        let first = try #require(r.stderrLines.first)
        #expect(first == "Error: at most 16 different --port values are supported, got 17")
    }

    @Test func usageFollowsTheErrorLine() throws {
        let r = try synsight("trace", "--count", "0")
        #expect(r.stderrLines.first == "Error: --count must be a positive number, got 0")
        #expect(r.stderr.contains("Usage: synsight trace"))
        #expect(r.stderr.contains("synsight trace --help"))
    }
}
