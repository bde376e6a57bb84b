import SynsightBase
/// Who a process is in the operator's terms: its cgroup, systemd unit,
/// container and Kubernetes pod. Derived from /proc/<pid>/cgroup
/// (`CgroupIdentity`) and named from what a node keeps on disk (Docker's
/// container configs, kubelet's pod log directories); every part optional.
/// The strings are untrusted (directory names, container names): they are
/// escaped by the JSON, terminal and HTML writers like process names.

/// The container runtime a cgroup path names.
public enum ContainerRuntime: String, Sendable, Hashable, CaseIterable {
    case docker
    case containerd
    case crio = "cri-o"
    case podman
    /// LXC, and LXD and Incus, which run their containers with it.
    case lxc

    /// The command that inspects, logs and restarts its named containers
    /// (the fixes name Docker's and Podman's; LXC's have their own words).
    public var cli: String {
        switch self {
        case .podman: return "podman"
        case .lxc: return "lxc-attach"
        case .containerd: return "nerdctl"
        case .crio: return "crictl"
        case .docker: return "docker"
        }
    }
}

public struct ContainerRef: Sendable, Hashable {
    /// nil when the layout does not say (kubelet's cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`).
    public var runtime: ContainerRuntime?
    /// 64 lower-case hex digits.
    public var id: String
    /// Docker's container name (without the leading "/"), when known.
    public var name: String?
    /// The Compose or Swarm service it was created for (its labels).
    public var service: ComposeService?

    public init(runtime: ContainerRuntime?, id: String, name: String? = nil, service: ComposeService? = nil) {
        self.runtime = runtime
        self.id = id
        self.name = name
        self.service = service
    }

    /// The first 12 digits, as `docker ps` shows them.
    public var shortID: String { String(id.prefix(12)) }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = []
        if let runtime { f.append(("runtime", .string(runtime.rawValue))) }
        f.append(("id", .string(id)))
        if let name { f.append(("name", .string(name))) }
        if let service { f.append(("service", service.json)) }
        return .object(f)
    }
}

/// Kubernetes pod QoS class, as kubelet names its cgroups.
public enum PodQoS: String, Sendable, Hashable, CaseIterable {
    case guaranteed, burstable, besteffort
}

public struct PodRef: Sendable, Hashable {
    /// The pod UID with dashes (systemd's `_` turned back into `-`).
    public var uid: String
    public var qos: PodQoS?
    public var namespace: String?
    public var name: String?
    /// The container's name in the pod spec.
    public var container: String?

    public init(uid: String, qos: PodQoS? = nil, namespace: String? = nil, name: String? = nil, container: String? = nil) {
        self.uid = uid
        self.qos = qos
        self.namespace = namespace
        self.name = name
        self.container = container
    }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = []
        if let namespace { f.append(("namespace", .string(namespace))) }
        if let name { f.append(("name", .string(name))) }
        f.append(("uid", .string(uid)))
        if let container { f.append(("container", .string(container))) }
        if let qos { f.append(("qos", .string(qos.rawValue))) }
        return .object(f)
    }

    /// "shop/api-7d9f" when both are known (as `kubectl -n shop` takes them).
    public var qualifiedName: String? { namespace.flatMap { ns in name.map { "\(ns)/\($0)" } } }

    /// "shop/api-7d9f", or the UID when the name is unknown.
    public var label: String {
        if let name { return namespace.map { "\($0)/\(name)" } ?? name }
        return "uid \(uid)"
    }
}

public struct WorkloadIdentity: Sendable, Hashable {
    /// The cgroup path the identity was read from (v2 or v1 `name=systemd`, or
    /// the v1 hierarchy that named a container).
    public var cgroup: String?
    /// systemd unit (`nginx.service`, `session-3.scope`), unescaped.
    public var unit: String?
    /// The user manager the unit runs under (`user@1000.service`), if any.
    public var userManager: String?
    public var container: ContainerRef?
    public var pod: PodRef?

    public init(cgroup: String? = nil, unit: String? = nil, userManager: String? = nil,
                container: ContainerRef? = nil, pod: PodRef? = nil) {
        self.cgroup = cgroup
        self.unit = unit
        self.userManager = userManager
        self.container = container
        self.pod = pod
    }

    public var isEmpty: Bool { cgroup == nil && unit == nil && container == nil && pod == nil }

    /// "pod" or "container" when the process runs in one (a pod's container
    /// is the pod's), else nil.
    public var isolationKind: String? { pod != nil ? "pod" : container != nil ? "container" : nil }

    /// The fields added to a process object (`cgroup`, `unit`, `user_manager`,
    /// `container`, `pod`), in that order; absent parts are left out.
    public var jsonFields: [(String, JSONValue)] {
        var f: [(String, JSONValue)] = []
        if let cgroup { f.append(("cgroup", .string(cgroup))) }
        if let unit { f.append(("unit", .string(unit))) }
        if let userManager { f.append(("user_manager", .string(userManager))) }
        if let container { f.append(("container", container.json)) }
        if let pod { f.append(("pod", pod.json)) }
        return f
    }

    /// The compact words shown after a pid: `unit nginx.service`,
    /// `pod shop/api-7d9f container api`, `container web`. Not escaped.
    public var words: [String] {
        var out: [String] = []
        if let pod {
            out.append("pod \(pod.label)")
            if let c = pod.container { out.append("container \(c)") }
            else if let c = container { out.append("container \(c.name ?? c.shortID)") }
        } else if let c = container {
            if let service = c.service { out.append(service.phrase) }
            out.append("container \(c.name ?? c.shortID)")
            if let unit { out.append("unit \(unit)") }
        } else if let unit {
            out.append("unit \(unit)" + (userManager.map { " (\($0))" } ?? ""))
        }
        return out
    }

    /// `words` as one phrase, e.g. for hints ("pod shop/api container api").
    public var phrase: String? { words.isEmpty ? nil : words.joined(separator: " ") }
}
