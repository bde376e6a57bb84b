import Foundation
import Testing

/// What rootless accounts change on the host, shared by the accounts that
/// live at once (should two tests overlap): their lines in /etc/subuid and
/// /etc/subgid, /run/user, and /dev/net/tun's mode. The first account takes
/// the host's state, the last one puts it back; the files are edited under
/// one lock, so no account loses another's line.
final class RootlessHostShare: @unchecked Sendable {
    static let shared = RootlessHostShare()
    let lock = NSLock()
    var accounts = 0
    var hadRunUser = false
    var tunMode: mode_t?

    func acquire(subordinate: String) throws {
        lock.lock()
        defer { lock.unlock() }
        if accounts == 0 {
            hadRunUser = FileManager.default.fileExists(atPath: "/run/user")
            var st = stat()
            tunMode = stat(RootlessAccount.tun, &st) == 0 ? st.st_mode & 0o777 : nil
            if tunMode != nil { _ = chmod(RootlessAccount.tun, 0o666) }
        }
        accounts += 1
        for file in ["/etc/subuid", "/etc/subgid"] {
            let h = try #require(FileHandle(forWritingAtPath: file))
            h.seekToEndOfFile()
            h.write(Data((subordinate + "\n").utf8))
            h.closeFile()
        }
    }

    func release(subordinate: String) {
        lock.lock()
        defer { lock.unlock() }
        for file in ["/etc/subuid", "/etc/subgid"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { $0 != Substring(subordinate) }
            try? kept.joined(separator: "\n").write(toFile: file, atomically: false, encoding: .utf8)
        }
        accounts -= 1
        guard accounts == 0 else { return }
        if let tunMode { _ = chmod(RootlessAccount.tun, tunMode) }
        // Made for these accounts: whatever their daemons left in it goes too.
        if !hadRunUser, FileManager.default.fileExists(atPath: "/run/user") {
            try? FileManager.default.removeItem(atPath: "/run/user")
            #expect(!FileManager.default.fileExists(atPath: "/run/user"), "/run/user, made for the rootless accounts, could not be removed")
        }
    }
}
