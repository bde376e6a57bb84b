import Glibc

/// Finding a network namespace by its inode: a named one (`ip netns`, under
/// /run/netns), else a process living in it.
enum NetnsPaths {
    /// Where named namespaces are mounted; PID 1's view last, for a synsight
    /// started in a mount namespace other than the host's (a container).
    static let namedDirs = ["/run/netns", "/var/run/netns", "/proc/1/root/run/netns"]

    /// A named namespace's path (a scan of the few /run/netns entries).
    static func namedPath(_ netns: UInt32) -> String? {
        for dir in namedDirs {
            for name in ProcFS.list(dir) where ProcFS.nsInode("\(dir)/\(name)") == netns {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }

    /// A process living in the namespace (a walk of /proc: not for the ring-buffer thread).
    static func processPath(_ netns: UInt32) -> String? {
        for pid in ProcFS.pids() where ProcFS.nsInode("/proc/\(pid)/ns/net") == netns {
            return "/proc/\(pid)/ns/net"
        }
        return nil
    }

    /// An open fd on a named namespace, or -1: cheap enough for the
    /// ring-buffer thread, where the pin must be taken before the namespace
    /// can be deleted.
    static func openNamed(_ netns: UInt32) -> Int32 {
        open(netns, via: namedPath)
    }

    /// An open fd on the namespace (it stays alive while the fd is open), or
    /// -1: a named one, else through a process living in it.
    static func open(_ netns: UInt32) -> Int32 {
        open(netns) { namedPath($0) ?? processPath($0) }
    }

    /// The inode is checked on the fd itself: a process may have moved or
    /// exited, a name may have been reused, between the lookup and the open.
    static func open(_ netns: UInt32, via find: (UInt32) -> String?) -> Int32 {
        for _ in 0..<2 {
            guard let p = find(netns) else { return -1 }
            let fd = Glibc.open(p, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var st = stat()
            if fstat(fd, &st) == 0, UInt32(truncatingIfNeeded: st.st_ino) == netns { return fd }
            close(fd)
        }
        return -1
    }
}
