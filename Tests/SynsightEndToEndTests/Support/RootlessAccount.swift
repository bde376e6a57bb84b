import Foundation
import Testing

/// Rootless containers (Podman's, Docker's: RootlessDocker.swift) as a user
/// of the test's own: the user (home in a temporary directory), its
/// subordinate ids in /etc/subuid and /etc/subgid, its runtime directory
/// /run/user/<uid>, and /dev/net/tun usable by it for slirp4netns (this
/// sandbox makes it root-only; hosts make it 0666). Its temporary files
/// (RootlessKit's state directory) go to its home. `stop()` kills every
/// process of the user (rootlessport, conmon, slirp4netns, Podman's pause
/// process; rootlesskit, dockerd, containerd), unmounts what its store
/// left, deletes the user and its home, removes its lines and directories,
/// and puts /dev/net/tun's mode back.
final class RootlessAccount {
    static let tun = "/dev/net/tun"
    let user: String
    let uid: UInt32
    let home: String
    let subordinate: String
    private var stopped = false
    /// A rootless dockerd was started (startDockerd).
    var dockerd = false

    init() throws {
        user = "synrl" + randomTag()
        let dir = tempDir()
        _ = chmod(dir, 0o755)  // mkdtemp's 0700 would keep the user out of its own home
        home = dir + "/home"
        try sh(["useradd", "-m", "-d", home, "-s", "/bin/sh", user])
        uid = try #require(UInt32(try sh(["id", "-u", user]).trimmingCharacters(in: .whitespacesAndNewlines)))
        subordinate = "\(user):\(400_000 + (uid % 1000) * 65_536):65536"
        try RootlessHostShare.shared.acquire(subordinate: subordinate)
        try FileManager.default.createDirectory(atPath: "/run/user/\(uid)", withIntermediateDirectories: true)
        _ = chown("/run/user/\(uid)", uid_t(uid), gid_t(uid))
        _ = chmod("/run/user/\(uid)", 0o700)
    }

    deinit { stop() }

    /// `podman args...` as the user, in its home.
    @discardableResult
    func podman(_ args: [String]) throws -> String { try sh(asUser(args)) }

    /// `podman run -d ...` as the user: detached from the test's pipes, which
    /// the conmon and rootlessport it leaves would hold open (Podman.detached).
    func run(_ args: [String]) throws { try Podman.detached(asUser(["run", "-d"] + args), log: home + "/../run.log") }

    func asUser(_ args: [String]) -> [String] {
        userShell + ["cd \"$HOME\" && exec \"$0\" \"$@\"", Podman.binary] + Podman.runtime + args
    }

    /// `sh -c` as the user, with its runtime directory and home.
    var userShell: [String] {
        ["runuser", "-u", user, "--", "env", "XDG_RUNTIME_DIR=/run/user/\(uid)", "HOME=\(home)", "TMPDIR=\(home)", "/bin/sh", "-c"]
    }

    /// Busybox and its applets imported into the user's store (which this makes).
    func importBusybox(tag: String) throws -> String {
        let image = "synsight-e2e-busybox:\(tag)"
        let rootfs = try ContainerHttpd.busyboxRootfs(in: home)
        try sh(["chown", "-R", "\(user):", rootfs])
        try sh(userShell + ["tar -C '\(rootfs)' -c . | \(Podman.binary) import - '\(image)'"])
        return image
    }

    /// The user's store, as synsight finds it.
    var store: String { home + "/.local/share/containers/storage" }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if dockerd { _ = try? docker(["rm", "-f"] + ((try? docker(["ps", "-aq"])) ?? "").split(separator: "\n").map(String.init)) }
        if FileManager.default.fileExists(atPath: store) { _ = try? podman(["rm", "-a", "-f", "-t", "0"]) }
        _ = try? sh(["pkill", "-9", "-u", user], allowFailure: true)
        _ = waitUntil(timeout: 10) { ((try? sh(["pgrep", "-u", user], allowFailure: true)) ?? "").isEmpty }
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                return f.count > 4 && f[4].hasPrefix(home) ? String(f[4]) : nil
            }
        for m in mounts.sorted(by: { $0.count > $1.count }) { umount2(m, Int32(MNT_DETACH)) }
        _ = try? sh(["userdel", "-r", "-f", user], allowFailure: true)
        try? FileManager.default.removeItem(atPath: "/run/user/\(uid)")
        RootlessHostShare.shared.release(subordinate: subordinate)
        try? FileManager.default.removeItem(atPath: (home as NSString).deletingLastPathComponent)
    }
}
