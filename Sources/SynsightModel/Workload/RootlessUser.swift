import SynsightBase

/// A user of the host who may run rootless containers: rootless Podman's
/// store and rootless Docker's data root are in the user's home, and their
/// commands run as the user. From /etc/passwd (every user but root with an
/// absolute home other than `/`).
public struct RootlessUser: Sendable, Hashable {
    public var name: String
    public var uid: UInt32
    public var home: String

    public init(name: String, uid: UInt32, home: String) {
        self.name = name
        self.uid = uid
        self.home = home
    }

    /// The users of an /etc/passwd text other than root (uid 0) with an
    /// absolute home; malformed lines are skipped.
    public static func users(passwd: String) -> [RootlessUser] {
        passwd.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 7, !f[0].isEmpty, let uid = UInt32(f[2]), uid != 0, f[5].hasPrefix("/"), f[5] != "/" else { return nil }
            let home = f[5].hasSuffix("/") ? String(f[5].dropLast()) : String(f[5])
            return RootlessUser(name: String(f[0]), uid: uid, home: home)
        }
    }

    /// Rootless Podman's default store (graphroot).
    public var podmanStore: String { home + "/.local/share/containers/storage" }

    /// Rootless Docker's default data root (`$XDG_DATA_HOME/docker`).
    public var dockerDataRoot: String { home + "/.local/share/docker" }

    /// Rootless nerdctl's data root (its container names).
    public var nerdctlDataRoot: String { home + "/.local/share/nerdctl" }

    /// The socket of the user's rootless dockerd (`$XDG_RUNTIME_DIR/docker.sock`).
    public var dockerSocket: String { "/run/user/\(uid)/docker.sock" }

    /// The data root of a rootless dockerd (one started by RootlessKit:
    /// `ROOTLESSKIT_STATE_DIR` in its environment) that names none on its
    /// command line: `$XDG_DATA_HOME/docker`, else `$HOME/.local/share/docker`.
    /// nil for a rootful dockerd (its default is /var/lib/docker).
    public static func dockerDataRoot(environment env: [String: String]) -> String? {
        guard env["ROOTLESSKIT_STATE_DIR"]?.isEmpty == false else { return nil }
        if let data = env["XDG_DATA_HOME"], data.hasPrefix("/") { return data + "/docker" }
        guard let home = env["HOME"], home.hasPrefix("/"), home != "/" else { return nil }
        return home + "/.local/share/docker"
    }

    /// `/proc/<pid>/environ`'s text: NUL-separated `KEY=value`.
    public static func environment(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for entry in text.split(separator: "\0") {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            out[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return out
    }
}
