import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Who holds a port, the active LSMs and SELinux's permission numbering,
/// read from /proc and /sys when a bind fails (rare: never per packet).
public final class ProcfsPortHolders: PortHolderLookup {
    public init() {}

    public func holders(netns: UInt32, port: UInt16, proto: String, near pid: UInt32) -> [PortHolder] {
        // A process in that namespace to read /proc/<pid>/net through: the
        // failing one if it is still there, else any.
        var reader: UInt32?
        if ProcFS.nsInode("/proc/\(pid)/ns/net") == netns { reader = pid }
        var inNetns: [UInt32] = []
        for p in ProcFS.pids() where ProcFS.nsInode("/proc/\(p)/ns/net") == netns {
            inNetns.append(p)
            if reader == nil { reader = p }
        }
        guard let reader else { return [] }
        var sockets: [ProcNetSocket] = []
        for (file, family) in [(proto, AddressFamily.ipv4), (proto + "6", .ipv6)] {
            guard let text = ProcFS.read("/proc/\(reader)/net/\(file)") else { continue }
            sockets += ProcNet.parse(text, family: family).filter { $0.local.port == port }
        }
        guard !sockets.isEmpty else { return [] }
        let wanted = Set(sockets.map(\.inode).filter { $0 != 0 })
        var owner: [UInt64: UInt32] = [:]
        if !wanted.isEmpty {
            for p in inNetns.sorted() {
                for fd in ProcFS.list("/proc/\(p)/fd") {
                    guard let target = ProcFS.readlink("/proc/\(p)/fd/\(fd)"),
                          target.hasPrefix("socket:["), target.hasSuffix("]"),
                          let ino = UInt64(target.dropFirst(8).dropLast()), wanted.contains(ino),
                          owner[ino] == nil else { continue }
                    owner[ino] = p
                }
                if owner.count == wanted.count { break }
            }
        }
        return sockets.map { s in
            let pid = s.inode == 0 ? nil : owner[s.inode]
            return PortHolder(pid: pid, comm: pid.flatMap(ProcFS.comm), state: TCPStateName.name(s.state, proto: proto),
                              family: s.family, local: s.local, remote: s.remote, inode: s.inode, source: "/proc")
        }
    }

    public func activeLSMs() -> [String]? {
        guard let text = ProcFS.read("/sys/kernel/security/lsm") else { return nil }
        let list = text.split(whereSeparator: { $0 == "," || $0 == "\n" }).map(String.init)
        return list.isEmpty ? nil : list
    }

    public func selinuxPermissions(tclass: String) -> [String: UInt32]? {
        guard !tclass.contains("/"), !tclass.isEmpty else { return nil }
        let dir = "/sys/fs/selinux/class/\(tclass)/perms"
        var out: [String: UInt32] = [:]
        for name in ProcFS.list(dir) {
            guard let v = ProcFS.read("\(dir)/\(name)"), let n = Int(v.split(separator: "\n").first ?? ""),
                  let bit = SELinuxPermissions.bit(fromSysfsValue: n) else { continue }
            out[name] = bit
        }
        return out.isEmpty ? nil : out
    }
}
