import SynsightBase
/// Names for what a cgroup path identifies, from the files a node keeps:
/// Docker's container configs and kubelet's log directories. Pure parsing
/// of those files' contents and names; SynsightKernel reads them.
public enum WorkloadNames {
    /// Docker's `<data-root>/containers/<id>/config.v2.json`: its `Name`
    /// ("/web") without the leading slash.
    public static func dockerName(configJSON bytes: [UInt8]) -> String? {
        dockerContainer(configJSON: bytes).name
    }

    /// The name and the Compose or Swarm service (its `Config.Labels`) of
    /// Docker's `config.v2.json`; both nil when it does not parse.
    public static func dockerContainer(configJSON bytes: [UInt8]) -> (name: String?, service: ComposeService?) {
        guard let root = JSONReader.parse(bytes) else { return (nil, nil) }
        return (dockerName(root), ComposeService(dockerConfig: root))
    }

    /// The networks a container of Docker's `config.v2.json` is attached
    /// to: network id -> name (`NetworkSettings.Networks`); what names the
    /// network behind a bridge `br-<id prefix>`.
    public static func dockerNetworks(configJSON bytes: [UInt8]) -> [String: String] {
        guard let root = JSONReader.parse(bytes), case .object(let nets)? = root["NetworkSettings"]?["Networks"] else { return [:] }
        var out: [String: String] = [:]
        for (name, net) in nets {
            if let id = net["NetworkID"]?.stringValue, !id.isEmpty, !name.isEmpty { out[id] = name }
        }
        return out
    }

    /// Every network libnetwork's store knows (`<data-root>/network/files/
    /// local-kv.db`, BoltDB): network id -> name, attached containers or
    /// not. libnetwork writes a network as a Go map, keys sorted, so each
    /// opens with `{"addrSpace":`; an id's name never changes (networks are
    /// not renamed), so an older copy in a free page names it as well.
    public static func dockerNetworks(localKV bytes: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        for object in BoltScan.objects(in: bytes, opening: Array(#"{"addrSpace":"#.utf8)) {
            guard let n = JSONReader.parse(object), let id = n["id"]?.stringValue, let name = n["name"]?.stringValue,
                  !id.isEmpty, !name.isEmpty else { continue }
            out[id] = name
        }
        return out
    }

    /// `Name` of a parsed `config.v2.json` ("/web") without the leading slash.
    static func dockerName(_ config: JSONValue) -> String? {
        guard var name = config["Name"]?.stringValue else { return nil }
        if name.hasPrefix("/") { name.removeFirst() }
        return name.isEmpty ? nil : name
    }

    /// Docker data roots named on a dockerd command line (`--data-root X`,
    /// `--data-root=X`, and the old `-g`/`--graph`).
    public static func dockerDataRoots(commandLine args: [String]) -> [String] {
        var roots: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if ["--data-root", "--graph", "-g"].contains(a), i + 1 < args.count {
                roots.append(args[i + 1])
                i += 2
                continue
            }
            for flag in ["--data-root=", "--graph="] where a.hasPrefix(flag) {
                roots.append(String(a.dropFirst(flag.count)))
            }
            i += 1
        }
        return roots.filter { $0.hasPrefix("/") }
    }

    /// Podman's (and CRI-O's) container monitor: conmon runs as the parent
    /// of a container's first process with `-c <id>` and `-n <name>` on its
    /// command line. The name, when the command line is conmon's for `containerID`.
    public static func conmonName(commandLine args: [String], containerID: String) -> String? {
        guard let c = monitoredContainer(commandLine: args), c.runtime == .podman, c.id == containerID else { return nil }
        return c.name
    }

    /// Podman's container store, `<graphroot>/<driver>-containers/containers.json`:
    /// container id -> its first name.
    public static func podmanNames(containersJSON bytes: [UInt8]) -> [String: String] {
        guard let root = JSONReader.parse(bytes), case .array(let items) = root else { return [:] }
        var out: [String: String] = [:]
        for item in items {
            guard let id = item["id"]?.stringValue, case .array(let names)? = item["names"],
                  let name = names.first?.stringValue, !name.isEmpty else { continue }
            out[id] = name
        }
        return out
    }

    /// `graphroot = "/path"` of containers-storage.conf(5) (its [storage] table).
    public static func storageGraphRoot(storageConf text: String) -> String? {
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let kv = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
            guard kv.count == 2, kv[0] == "graphroot" else { continue }
            let value = kv[1].trimmingCharacters(in: "\"'")
            return value.hasPrefix("/") ? value : nil
        }
        return nil
    }

    /// The container a container monitor's command line runs: conmon's
    /// (Podman, CRI-O: `-c <id>`, `-n <name>`) or a containerd shim's
    /// (`containerd-shim-runc-v2 -namespace <ns> -id <id>`: Docker's
    /// containerd namespace is `moby`; nerdctl's and ctr's others). For a
    /// process whose cgroup names no container (rootless containers where
    /// cgroups are not delegated: cgroup v1, or no systemd), the monitor
    /// above it does. nil for any other command line, or an id that is not
    /// a runtime's 64 hex digits.
    public static func monitoredContainer(commandLine args: [String]) -> ContainerRef? {
        guard let first = args.first else { return nil }
        let program = first.split(separator: "/").last.map(String.init) ?? first
        let isConmon = program == "conmon", isShim = program.hasPrefix("containerd-shim")
        guard isConmon || isShim else { return nil }
        let idFlags: Set<String> = isConmon ? ["-c", "--cid"] : ["-id", "--id"]
        let nameFlags: Set<String> = isConmon ? ["-n", "--name"] : []
        let namespaceFlags: Set<String> = isShim ? ["-namespace", "--namespace"] : []
        var id: String?, name: String?, namespace: String?
        var i = 1
        while i + 1 < args.count {
            let flag = args[i], value = args[i + 1]
            if idFlags.contains(flag) { id = value } else if nameFlags.contains(flag) { name = value }
            else if namespaceFlags.contains(flag) { namespace = value } else { i += 1; continue }
            i += 2
        }
        guard let id, CgroupIdentity.isContainerID(id) else { return nil }
        if isConmon { return ContainerRef(runtime: .podman, id: id, name: name.flatMap { $0.isEmpty ? nil : $0 }) }
        return ContainerRef(runtime: namespace == "moby" ? .docker : .containerd, id: id)
    }

    /// A nerdctl name file's content (`<data root>/<address hash>/names/<namespace>/<name>`):
    /// the container id it names, when it is one.
    public static func nerdctlNameFile(_ text: String) -> String? {
        let id = text.trimmingCharacters(in: " \n")
        return CgroupIdentity.isContainerID(id) ? id : nil
    }

    /// Is this process a Docker daemon (argv[0] ending in `dockerd`)?
    public static func isDockerd(commandLine args: [String]) -> Bool {
        guard let first = args.first else { return false }
        return first == "dockerd" || first.hasSuffix("/dockerd")
    }

    /// A kubelet pod log directory name: `<namespace>_<pod>_<uid>`.
    /// Namespaces and pod names are DNS labels/subdomains (no `_`).
    public static func podLogDirectory(_ name: String) -> (namespace: String, pod: String, uid: String)? {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              CgroupIdentity.isPodUID(String(parts[2])) else { return nil }
        return (String(parts[0]), String(parts[1]), String(parts[2]))
    }

    /// kubelet's `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`
    /// symlinks: the container name for a container id.
    public static func containerLogLink(_ name: String) -> (pod: String, namespace: String, container: String, id: String)? {
        guard name.hasSuffix(".log") else { return nil }
        let stem = name.dropLast(4)
        let parts = stem.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, let dash = parts[2].lastIndex(of: "-") else { return nil }
        let container = parts[2][..<dash], id = String(parts[2][parts[2].index(after: dash)...])
        guard !container.isEmpty, CgroupIdentity.isContainerID(id) else { return nil }
        return (String(parts[0]), String(parts[1]), String(container), id)
    }
}
