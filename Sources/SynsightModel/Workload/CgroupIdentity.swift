import SynsightBase
/// From the text of /proc/<pid>/cgroup to a `WorkloadIdentity` (without
/// names: those come from the node's files, see `WorkloadNames`). Pure.
///
/// Handles cgroup v2 (`0::/path`), v1 (`4:memory:/path`, `1:name=systemd:/path`)
/// and hybrid hosts (both), and the layouts of:
/// - systemd: `/system.slice/nginx.service`, user managers
///   `/user.slice/user-1000.slice/user@1000.service/app.slice/x.service`,
///   unit names escaped as systemd does (`\x2d`);
/// - container runtimes under the systemd cgroup driver: `docker-<id>.scope`,
///   `cri-containerd-<id>.scope`, `nerdctl-<id>.scope`, `crio-<id>.scope`,
///   `libpod-<id>.scope` (rootless ones below the user's manager);
///   and under the cgroupfs driver: `/docker/<id>`, `/libpod_parent/libpod-<id>`,
///   `/kubepods/<qos>/pod<uid>/<id>`;
/// - LXC, LXD and Incus (`/lxc.payload.<name>`), older LXC and Proxmox VE
///   (`/lxc/<name or vmid>`): the container's name is in the path;
/// - systemd inside a container (a system container, or `--cgroupns` Docker
///   running systemd): a unit below the container's cgroup is the unit the
///   process runs in there (`/lxc.payload.web/system.slice/nginx.service`);
/// - kubelet: `kubepods-<qos>-pod<uid with _>.slice` (systemd driver),
///   `/kubepods/<qos>/pod<uid>` (cgroupfs driver); guaranteed pods have no
///   QoS level.
public enum CgroupIdentity {
    /// One line of /proc/<pid>/cgroup.
    public struct Line: Sendable, Hashable {
        /// 0 for the v2 hierarchy.
        public var hierarchy: Int
        /// `["memory"]`, `["name=systemd"]`, `[]` for v2.
        public var controllers: [String]
        public var path: String

        public var isV2: Bool { hierarchy == 0 && controllers.isEmpty }
        public var isSystemdV1: Bool { controllers.contains("name=systemd") }
    }

    /// Longest line and path accepted; anything longer is not a cgroup line.
    static let maxPath = 4096

    /// The lines of /proc/<pid>/cgroup; malformed lines are skipped.
    public static func lines(_ text: String) -> [Line] {
        var out: [Line] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard raw.utf8.count <= maxPath + 256 else { continue }
            let parts = raw.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let h = Int(parts[0]), h >= 0 else { continue }
            var path = String(parts[2])
            if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
            guard path.hasPrefix("/") else { continue }
            // Read from inside a cgroup namespace (synsight in a pod), other
            // processes' paths start above its root: "/../../system.slice/x.service".
            while path.hasPrefix("/../") { path.removeFirst(3) }
            if path == "/.." { path = "/" }
            let controllers = parts[1].split(separator: ",").map(String.init)
            out.append(Line(hierarchy: h, controllers: controllers, path: path))
        }
        return out
    }

    /// The most informative identity of a process, from all its lines: one
    /// that names a container or pod, else a unit, else its v2 or systemd
    /// path. Per-controller v1 paths that name nothing are not reported.
    /// nil when no line says anything (every path `/`, or garbage).
    public static func identity(cgroupFile text: String) -> WorkloadIdentity? {
        var best: (score: Int, rank: Int, id: WorkloadIdentity)?
        for line in lines(text) {
            let id = identity(path: line.path)
            var score = 0
            if id.container != nil || id.pod != nil { score = 3 } else if id.unit != nil { score = 2 }
            else if line.path != "/" && (line.isV2 || line.isSystemdV1) { score = 1 }
            guard score > 0 else { continue }
            let rank = line.isV2 ? 2 : line.isSystemdV1 ? 1 : 0
            if let b = best, (b.score, b.rank) >= (score, rank) { continue }
            best = (score, rank, id)
        }
        return best?.id
    }

    /// What one cgroup path says (names not resolved).
    public static func identity(path: String) -> WorkloadIdentity {
        var id = WorkloadIdentity(cgroup: path)
        let parts = path.split(separator: "/").map(String.init)
        var innerUnit: String?
        for (i, part) in parts.enumerated() {
            let parent = i > 0 ? parts[i - 1] : nil
            if let pod = pod(component: part, parent: parent, inKubepods: parts[..<i].contains { $0.hasPrefix("kubepods") }) {
                id.pod = pod
            } else if let c = container(component: part, parent: parent) ?? lxc(component: part, index: i, parts: parts) {
                id.container = c
                innerUnit = nil
            } else if let unit = unit(component: part) {
                if id.container != nil || id.pod != nil {
                    innerUnit = unit  // systemd inside the container
                    continue
                }
                if id.unit.map({ $0.hasPrefix("user@") && $0.hasSuffix(".service") }) == true {
                    id.userManager = id.unit
                }
                id.unit = unit
            }
        }
        if id.container != nil || id.pod != nil {
            id.unit = innerUnit
            id.userManager = nil
        }
        return id
    }

    // MARK: - Components

    static let unitSuffixes = [".service", ".scope"]

    package static func unit(component: String) -> String? {
        guard unitSuffixes.contains(where: { component.hasSuffix($0) }), component.count > 8 else { return nil }
        return SystemdEscape.unescape(component)
    }

    static let scopePrefixes: [(String, ContainerRuntime)] = [
        ("docker-", .docker), ("cri-containerd-", .containerd), ("nerdctl-", .containerd), ("crio-", .crio), ("libpod-", .podman),
    ]

    /// `docker-<id>.scope`, `/docker/<id>`, `<id>` (kubelet cgroupfs), `libpod-<id>`.
    package static func container(component c: String, parent: String?) -> ContainerRef? {
        if isContainerID(c) {
            return ContainerRef(runtime: parent == "docker" ? .docker : nil, id: c)
        }
        var name = Substring(c)
        if name.hasSuffix(".scope") { name = name.dropLast(".scope".count) }
        for (prefix, runtime) in scopePrefixes where name.hasPrefix(prefix) {
            let id = String(name.dropFirst(prefix.count))
            if isContainerID(id) { return ContainerRef(runtime: runtime, id: id) }
        }
        return nil
    }

    /// LXC's (and LXD's, Incus's) payload cgroup `lxc.payload.<name>`, and
    /// `/lxc/<name>` at the top (LXC before 4, Proxmox VE's `/lxc/<vmid>`).
    /// `lxc.monitor.<name>` holds lxc-start, not the container. The name is
    /// the container's only id.
    package static func lxc(component c: String, index i: Int, parts: [String]) -> ContainerRef? {
        var name: Substring?
        if c.hasPrefix("lxc.payload.") {
            name = c.dropFirst("lxc.payload.".count)
        } else if i == 1, parts[0] == "lxc" {
            name = Substring(c)
        }
        guard let name, !name.isEmpty, !name.hasPrefix(".") else { return nil }
        return ContainerRef(runtime: .lxc, id: String(name), name: String(name))
    }

    package static func isContainerID(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// `kubepods-besteffort-pod<uid_>.slice`, `kubepods-pod<uid_>.slice`, or
    /// `pod<uid>` below a `kubepods` directory (cgroupfs driver).
    package static func pod(component c: String, parent: String?, inKubepods: Bool) -> PodRef? {
        if c.hasSuffix(".slice"), c.contains("kubepods"), let r = c.ranges(of: "-pod").last {
            let uid = String(c[r.upperBound...].dropLast(".slice".count)).replacing("_", with: "-")
            guard isPodUID(uid) else { return nil }
            let head = c[..<r.lowerBound]
            let qos: PodQoS = head.hasSuffix("-besteffort") ? .besteffort : head.hasSuffix("-burstable") ? .burstable : .guaranteed
            return PodRef(uid: uid, qos: qos)
        }
        if inKubepods, c.hasPrefix("pod") {
            let uid = String(c.dropFirst(3))
            guard isPodUID(uid) else { return nil }
            let qos: PodQoS = parent == "besteffort" ? .besteffort : parent == "burstable" ? .burstable : .guaranteed
            return PodRef(uid: uid, qos: qos)
        }
        return nil
    }

    /// A pod UID: a UUID (36) or a static pod's hash (32 hex digits).
    static func isPodUID(_ s: String) -> Bool {
        (s.utf8.count == 36 || s.utf8.count == 32)
            && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D }
    }
}

/// systemd's unit-name escaping: `\xNN` stands for one byte.
public enum SystemdEscape {
    public static func unescape(_ s: String) -> String {
        guard s.contains("\\x") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, b[i + 1] == 0x78, let hi = hex(b[i + 2]), let lo = hex(b[i + 3]) {
                out.append(hi << 4 | lo)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}

/// /proc/<pid>/stat: the process's name (field 2), parent (field 4) and
/// start time (field 22, clock ticks since boot, the boot-time clock the
/// kernel events use).
public enum ProcStat {
    /// The name between the first '(' and the last ')' (a name may hold either).
    public static func comm(_ text: String) -> Substring? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else { return nil }
        return text[text.index(after: open)..<close]
    }

    public static func parent(_ text: String) -> UInt32? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ").dropFirst().first.flatMap { UInt32($0) }
    }

    public static func startTicks(_ text: String) -> UInt64? {
        // comm (field 2) is in parentheses and may hold spaces or ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
