import Foundation
import Testing

/// What trace, record and doctor guarantee when the world is hostile, for
/// the cases that need no BPF (README "Guarantees"); the rest are in the
/// end-to-end suites (GuaranteeTests).
@Suite("synsight CLI: guarantees")
struct GuaranteeCLITests {
    func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-guarantee-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A second recorder on a directory is refused before it loads BPF or
    /// touches a file: here the lock is held by this test process, as a
    /// running recorder holds it.
    @Test func recordRefusesADirectoryAnotherRecorderHolds() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fd = open(dir + "/.synsight.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let pid = Array("\(getpid())\n".utf8)
        try #require(pwrite(fd, pid, pid.count, 0) == pid.count)
        // The holder's partial last line: a second recorder must not "repair" it.
        let active = dir + "/synsight.jsonl"
        try Data("{\"v\":1,\"ts\":".utf8).write(to: URL(fileURLWithPath: active))

        let r = try run(["record", "--dir", dir], timeout: 15)
        #expect(r.status == 1)
        #expect(r.stderrLines == ["synsight: error: cannot record to \(dir): another synsight record (pid \(getpid())) "
            + "is writing there; stop it or use another --dir"], "\(r.stderr)")
        #expect(try String(contentsOfFile: active, encoding: .utf8) == "{\"v\":1,\"ts\":")
    }

    /// A failed write to standard output is one line and a non-zero status.
    @Test func doctorReportsAFailedWriteToStandardOutput() throws {
        let r = try run(["doctor"], stdoutPath: "/dev/full")
        #expect(r.status == 1)
        #expect(r.stderrLines.last == "synsight: error: cannot write to standard output: No space left on device (ENOSPC)",
                "\(r.stderr)")
        #expect(r.stderrLines.count == 1, "\(r.stderr)")
    }
}
