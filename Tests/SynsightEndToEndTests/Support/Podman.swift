import Foundation
import Testing

/// Rootful Podman with everything of its own under a temporary directory
/// (`--root`, `--runroot`, `--tmpdir`; vfs storage, the cgroupfs manager,
/// file events: no systemd here) and containers without a network (no
/// bridge, no firewall rules). What Podman leaves on the host anyway is
/// removed in `stop()`: its cgroups (`libpod_parent` in every hierarchy),
/// its blob cache in /var/lib/containers and runc's state root /run/runc
/// when they did not exist.
final class Podman {
    static let binary = "/usr/bin/podman"
    /// The OCI runtime: runc (installed with docker.io), not Podman's default
    /// crun, which refuses a hybrid host whose v2 hierarchy holds any
    /// controller ("cgroups in hybrid mode not supported": hugetlb is there
    /// on some boots of this host); runc uses the v1 hierarchies.
    static let runtime = ["--runtime", "/usr/sbin/runc"]
    static let varLib = "/var/lib/containers"
    /// libcni's result cache (its default cache directory), written on every network set-up.
    static let varLibCNI = "/var/lib/cni"
    /// runc's default state root, which Podman's runc leaves behind.
    static let runRunc = "/run/runc"
    let root: String
    let hadVarLib: Bool
    let hadVarLibCNI: Bool
    let hadRunRunc: Bool
    let cgroupsBefore: Set<String>
    /// With a network: its CNI configuration directory, bridge, and the host before.
    let network: (dir: String, name: String, bridge: String, hostBefore: HostNetworkState)?
    private var stopped = false

    /// `network`: a CNI bridge network of the test's own (its configuration
    /// and IP allocations under the temporary directory, a bridge `br-pm…` in
    /// 198.19.241.0/24, port mappings by CNI's portmap plugin, as Podman 4
    /// sets up `-p`): what it leaves on the host (the bridge, CNI's iptables
    /// chains, ip_forward) is removed in `stop()`, and the host compared.
    init(network: Bool = false) throws {
        root = tempDir()
        hadVarLib = FileManager.default.fileExists(atPath: Self.varLib)
        hadVarLibCNI = FileManager.default.fileExists(atPath: Self.varLibCNI)
        hadRunRunc = FileManager.default.fileExists(atPath: Self.runRunc)
        cgroupsBefore = Self.libpodCgroups()
        guard network else { self.network = nil; return }
        let hostBefore = HostNetworkState.capture()
        let dir = root + "/net", name = "synsight-e2e", bridge = "br-pm" + String(randomTag().prefix(6))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
            {"cniVersion": "0.4.0", "name": "\(name)", "plugins": [
              {"type": "bridge", "bridge": "\(bridge)", "isGateway": true, "ipMasq": false,
               "ipam": {"type": "host-local", "dataDir": "\(root)/cni",
                        "ranges": [[{"subnet": "198.19.241.0/24", "gateway": "198.19.241.1"}]]}},
              {"type": "portmap", "capabilities": {"portMappings": true}}]}
            """.write(toFile: dir + "/\(name).conflist", atomically: true, encoding: .utf8)
        self.network = (dir, name, bridge, hostBefore)
    }

    deinit { stop() }

    /// Whether podman is installed; a failed expectation when it is not.
    static func installed(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let ok = FileManager.default.isExecutableFile(atPath: binary)
        #expect(ok, "podman is not installed: run scripts/install-deps.sh", sourceLocation: sourceLocation)
        return ok
    }

    /// Podman's global options: everything of its own under `root`.
    var globalOptions: [String] {
        ["--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
         "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"] + Self.runtime
            + (network.map { ["--network-config-dir", $0.dir] } ?? [])
    }

    /// A storage.conf naming this store, for synsight (`CONTAINERS_STORAGE_CONF`).
    func storageConf() throws -> String {
        let path = root + "/storage.conf"
        try "[storage]\ndriver = \"vfs\"\ngraphroot = \"\(root)/root\"\nrunroot = \"\(root)/run\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @discardableResult
    func podman(_ args: [String]) throws -> String {
        try sh([Self.binary] + globalOptions + args)
    }

    /// busybox and its applets as `synsight-e2e-busybox:<tag>`; returns that name.
    func importBusybox(tag: String) throws -> String {
        let image = "synsight-e2e-busybox:\(tag)"
        let rootfs = try ContainerHttpd.busyboxRootfs(in: root)
        let options = globalOptions.map { "'\($0)'" }.joined(separator: " ")
        try sh(["/bin/sh", "-c", "tar -C '\(rootfs)' -c . | '\(Self.binary)' \(options) import - '\(image)'"])
        return image
    }

    /// `podman run -d` (on the test's network with `publish`, else without
    /// one); returns the container's id. The rlimits are set low: Podman's
    /// defaults are above this sandbox's hard limits (no CAP_SYS_RESOURCE).
    /// `labels`: as podman-compose labels its containers.
    func run(name: String, image: String, command: String, publish: [String] = [], labels: [String: String] = [:]) throws -> String {
        let net = network.map { ["--network", $0.name] + publish.flatMap { ["-p", $0] } } ?? ["--network", "none"]
        try detached([Self.binary] + globalOptions + ["run", "-d", "--name", name] + net
                     + labels.sorted { $0.key < $1.key }.flatMap { ["--label", "\($0.key)=\($0.value)"] }
                     + ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", image, "/bin/sh", "-c", command])
        return try podman(["inspect", "-f", "{{.Id}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `podman start` or `stop`: through `detached` too (start leaves a conmon).
    func lifecycle(_ verb: String, _ name: String) throws {
        try detached([Self.binary] + globalOptions + (verb == "stop" ? ["stop", "-t", "0", name] : [verb, name]))
    }

    /// The conmon a podman command leaves running inherits every descriptor
    /// podman had, and Foundation's Process waits for all of its own to
    /// close: podman runs from Python with only 0-2 open, its output in a file.
    func detached(_ args: [String]) throws { try Self.detached(args, log: root + "/run.log") }

    static func detached(_ args: [String], log: String) throws {
        let script = """
            import subprocess, sys
            with open(sys.argv[1], "w") as log:
                rc = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True).returncode
            sys.stderr.write(open(sys.argv[1]).read() if rc else "")
            sys.exit(rc)
            """
        try sh(["/usr/bin/python3", "-c", script, log] + args)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? podman(["rm", "-af", "-t", "0"])
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                return f.count > 4 && f[4].hasPrefix(root) ? String(f[4]) : nil
            }
        for m in mounts.sorted(by: { $0.count > $1.count }) { _ = umount2(m, Int32(MNT_DETACH)) }
        // conmon leaves its cgroup only when it exits, a moment after the
        // container is removed: retry until each directory made here is gone.
        // runc's state root likewise empties only once its containers' state is gone.
        _ = waitUntil(timeout: 15) {
            let left = Self.libpodCgroups().subtracting(cgroupsBefore)
            for dir in left.sorted(by: { $0.count > $1.count }) { rmdir(dir) }
            if !hadRunRunc { rmdir(Self.runRunc) }
            return Self.libpodCgroups().subtracting(cgroupsBefore).isEmpty
                && (hadRunRunc || !FileManager.default.fileExists(atPath: Self.runRunc))
        }
        let left = Self.libpodCgroups().subtracting(cgroupsBefore)
        #expect(left.isEmpty, "Podman's cgroups could not be removed: \(left.sorted())")
        if !hadVarLib { try? FileManager.default.removeItem(atPath: Self.varLib) }
        if !hadVarLibCNI { try? FileManager.default.removeItem(atPath: Self.varLibCNI) }
        #expect(hadRunRunc || !FileManager.default.fileExists(atPath: Self.runRunc),
                "runc's state root \(Self.runRunc) was left: \((try? FileManager.default.contentsOfDirectory(atPath: Self.runRunc)) ?? [])")
        if let network {
            // CNI's DEL took the container's rules; portmap's chains, the bridge and ip_forward stay.
            _ = try? sh(["ip", "link", "del", network.bridge], allowFailure: true)
            DockerFirewall.remove(bridge: network.bridge, tablesBefore: network.hostBefore.nftTables, chainPrefix: "CNI-")
            network.hostBefore.restoreSysctls()
            let changes = HostNetworkState.capture().changes(since: network.hostBefore)
            #expect(changes.isEmpty, "Podman's network left the host changed: \(changes)")
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Every cgroup directory Podman's cgroupfs manager makes (`libpod_parent` and below), in every hierarchy.
    static func libpodCgroups() -> Set<String> {
        var out = Set<String>()
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for h in hierarchies {
            let top = "/sys/fs/cgroup/\(h)/libpod_parent"
            guard FileManager.default.fileExists(atPath: top) else { continue }
            out.insert(top)
            for sub in FileManager.default.enumerator(atPath: top)?.compactMap({ $0 as? String }) ?? [] {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: top + "/" + sub, isDirectory: &isDir), isDir.boolValue {
                    out.insert(top + "/" + sub)
                }
            }
        }
        return out
    }
}
