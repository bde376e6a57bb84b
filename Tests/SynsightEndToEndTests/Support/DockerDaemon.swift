import Foundation
import Testing

/// A Docker daemon of the test's own (Debian's docker.io, installed by
/// scripts/install-deps.sh): its own data root, exec root, socket and
/// pidfile; no bridge, or (`bridge:`) a docker0 in a test range for
/// published ports; no iptables rules, or (`iptables: true`) the DNAT,
/// filter and masquerade rules Docker manages itself (with or without
/// docker-proxy, `userlandProxy`), but never IP forwarding for the host.
/// `stop()` removes its containers, stops it by its pid, deletes docker0 and
/// the veths on it if it created it, unmounts what it left, removes Docker's
/// chains and rules (`DockerFirewall`), writes back the sysctls it changed
/// and removes everything it created on the host (its directories,
/// /etc/docker/key.json, /run/containerd, /opt/containerd, /run/runc, its `docker`
/// cgroups) that did not exist before.
final class DockerDaemon {
    static let dockerd = "/usr/sbin/dockerd"
    static let client = "/usr/bin/docker"
    /// Host paths dockerd, its containerd and its BuildKit create outside the
    /// roots given to them (BuildKit's RUN steps leave runc's default state
    /// root, /run/runc).
    static let sideEffects = ["/etc/docker", "/run/docker", "/run/containerd", "/opt/containerd", "/run/runc"]
        + ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified", ""]
            .map { "/sys/fs/cgroup/\($0)\($0.isEmpty ? "" : "/")docker" }
            .flatMap { [$0 + "/buildkit", $0] }  // BuildKit's (image builds), before its parent

    let root: String
    let process = Process()
    let preexisting: Set<String>
    let createdBridge: Bool
    /// The host before dockerd started, when it manages iptables rules.
    let hostBefore: HostNetworkState?
    var stopped = false

    var socket: String { root + "/docker.sock" }
    var dataRoot: String { root + "/data" }

    /// `bridge`: docker0's address (e.g. "198.19.250.1/24"); nil: no bridge.
    /// `iptables`: Docker writes its own rules (published ports by DNAT,
    /// masquerade); `userlandProxy`: docker-proxy serves published ports for
    /// the host's own (loopback) clients, else DNAT does.
    init(bridge: String? = nil, iptables: Bool = false, userlandProxy: Bool = true) throws {
        preexisting = Set(Self.sideEffects.filter { FileManager.default.fileExists(atPath: $0) })
        createdBridge = bridge != nil && !FileManager.default.fileExists(atPath: "/sys/class/net/docker0")
        hostBefore = iptables ? HostNetworkState.capture() : nil
        root = tempDir()
        process.executableURL = URL(fileURLWithPath: Self.dockerd)
        process.arguments = ["--data-root", dataRoot, "--exec-root", root + "/exec", "-H", "unix://" + socket,
                             "--pidfile", root + "/docker.pid", bridge.map { "--bip=" + $0 } ?? "--bridge=none",
                             "--iptables=\(iptables)", "--ip6tables=false",
                             "--ip-forward=false", "--ip-masq=\(iptables)", "--userland-proxy=\(userlandProxy)",
                             "--containerd-namespace", "synsight-e2e", "--containerd-plugins-namespace", "synsight-e2e-plugins"]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let up = waitUntil(timeout: 60) {
            !process.isRunning || ((try? docker(["version"])) != nil)
        }
        guard up, process.isRunning else {
            stop()
            throw CommandFailure(description: "dockerd did not start (data root \(dataRoot))")
        }
    }

    @discardableResult
    func docker(_ args: [String], allowFailure: Bool = false) throws -> String {
        try sh([Self.client, "-H", "unix://" + socket] + args, allowFailure: allowFailure)
    }

    /// Busybox httpd in container `name`, once it listens on `port`: the
    /// container's init pid, httpd's pid and the container's network namespace.
    func httpd(in name: String, port: Int, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (pid1: Int, httpd: Int?, netns: Int) {
        let pid1 = try #require(Int(try docker(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)), sourceLocation: sourceLocation)
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: port, container: name, sourceLocation: sourceLocation)
        return (pid1, httpd, netns)
    }

    /// Whether docker.io is installed; a failed expectation when it is not.
    static func installed(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let ok = FileManager.default.isExecutableFile(atPath: dockerd)
        #expect(ok, "docker.io is not installed: run scripts/install-deps.sh", sourceLocation: sourceLocation)
        return ok
    }

    /// An image with busybox (from Debian's busybox-static) and its applets,
    /// and `binaries` (name in /bin -> a static executable on the host),
    /// imported as `synsight-e2e-busybox:<tag>`; returns that name.
    @discardableResult
    func importBusybox(tag: String, binaries: [String: String] = [:]) throws -> String {
        let image = "synsight-e2e-busybox:\(tag)"
        let rootfs = try ContainerHttpd.busyboxRootfs(in: root)
        for (name, path) in binaries { try FileManager.default.copyItem(atPath: path, toPath: rootfs + "/bin/" + name) }
        try sh(["/bin/sh", "-c", "tar -C '\(rootfs)' -c . | '\(Self.client)' -H 'unix://\(socket)' import - '\(image)'"])
        return image
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            if let ids = try? docker(["ps", "-aq"]) {
                for id in ids.split(separator: "\n") { _ = try? docker(["rm", "-f", String(id)]) }
            }
            kill(process.processIdentifier, SIGTERM)
            if !waitUntil(timeout: 30, { !process.isRunning }) {
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
        }
        // Mounts left under our root (overlay layers, the exec root's netns files), deepest first.
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                return f.count > 4 && f[4].hasPrefix(root) ? String(f[4]) : nil
            }
        for m in mounts.sorted(by: { $0.count > $1.count }) { umount2(m, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: root)
        if createdBridge {
            // Veths of containers dockerd did not remove (it was killed).
            let ports = ((try? sh(["ip", "-o", "link", "show", "master", "docker0"], allowFailure: true)) ?? "")
                .split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first?.split(separator: "@").first }
            for port in ports { _ = try? sh(["ip", "link", "del", port.trimmingCharacters(in: .whitespaces)], allowFailure: true) }
            _ = try? sh(["ip", "link", "del", "docker0"], allowFailure: true)
        }
        if let hostBefore {
            DockerFirewall.remove(bridge: "docker0", tablesBefore: hostBefore.nftTables)
            hostBefore.restoreSysctls()
        }
        for path in Self.sideEffects where !preexisting.contains(path) {
            if path.hasPrefix("/sys/fs/cgroup") { rmdir(path) } else { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    deinit { stop() }
}
