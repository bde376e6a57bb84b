import Foundation
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightRecording
import Testing
import SynsightTestSupport

/// One recorder per directory. flock(2) locks belong to an open file
/// description, so two locks taken in this one process conflict exactly
/// as two processes would; the end-to-end test kills a real recorder.
@Suite("RecorderLock")
struct RecorderLockTests {
    @Test func aSecondLockIsRefusedWithTheHoldersPid() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try RecorderLock(directory: dir)
        do {
            _ = try RecorderLock(directory: dir)
            Issue.record("a second lock on the same directory was granted")
        } catch {
            #expect(error.lockedBy == RecorderLock.Holder(pid: getpid()))
            #expect(error.description == "another synsight record (pid \(getpid())) is writing there")
        }
        first.release()
        // Released: the next one gets it, and the file names the new holder.
        let second = try RecorderLock(directory: dir)
        #expect(lines(dir + "/" + RecorderLock.fileName) == ["\(getpid())"])
        second.release()
    }

    @Test func aHolderThatWroteNoPidIsStillRefused() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Another program holding the lock file without writing its pid.
        let fd = open(dir + "/" + RecorderLock.fileName, O_RDWR | O_CREAT, 0o640)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        #expect(throws: RecorderError.self) { _ = try RecorderLock(directory: dir) }
        do { _ = try RecorderLock(directory: dir) } catch {
            #expect(error.lockedBy == RecorderLock.Holder(pid: nil))
            #expect(error.description == "another synsight record is writing there")
        }
    }

    @Test func aSymlinkAtTheLockPathIsNotFollowed() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/victim"
        _ = FileManager.default.createFile(atPath: victim, contents: Data("keep\n".utf8))
        symlink(victim, dir + "/" + RecorderLock.fileName)
        do {
            _ = try RecorderLock(directory: dir)
            Issue.record("the lock was taken through a symlink")
        } catch {
            #expect(error.errno == ELOOP)
            #expect(error.lockedBy == nil)
        }
        #expect(lines(victim) == ["keep"])
    }

    @Test func aFIFOAtTheLockPathIsRefusedWithoutBlocking() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/" + RecorderLock.fileName, 0o600) == 0)
        do {
            _ = try RecorderLock(directory: dir)
            Issue.record("a FIFO was taken as the lock file")
        } catch {
            #expect(error.lockedBy == nil)
            #expect(error.description.contains("is not a regular file"), "\(error)")
        }
    }

    @Test func aRecorderHoldsTheLockFromOpenToClose() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = Recorder(options: .init(directory: dir))
        try a.open()
        let b = Recorder(options: .init(directory: dir))
        do {
            try b.open()
            Issue.record("two recorders opened the same directory")
        } catch {
            #expect(error.lockedBy?.pid == getpid())
        }
        // The refused recorder touched nothing: a's file is still the one in use.
        a.append(sampleRecord(1))
        a.close()
        #expect(lines(dir + "/" + Recorder.activeName).count == 1)
        try b.open()
        b.close()
    }
}
