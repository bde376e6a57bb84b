import Foundation
import Testing

/// Rootless Docker as the account's user: Debian's docker.io
/// `dockerd-rootless.sh` under RootlessKit (rootlesskit, slirp4netns;
/// installed by scripts/install-deps.sh), started as a user would start it
/// (`dockerd-rootless.sh`, no options): its data root is the default one in
/// the user's home, its socket /run/user/<uid>/docker.sock, and rootlesskit
/// forwards its published ports in the host's namespace. Its bridge,
/// rules and mounts live in RootlessKit's namespaces and go with it.
extension RootlessAccount {
    static let rootlessScript = "/usr/share/docker.io/contrib/dockerd-rootless.sh"

    var dockerSocket: String { "/run/user/\(uid)/docker.sock" }

    /// Whether the rootless Docker pieces are installed; a failed expectation when they are not.
    static func rootlessDockerInstalled(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let ok = ["/usr/bin/rootlesskit", "/usr/bin/slirp4netns", rootlessScript, DockerDaemon.dockerd]
            .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        #expect(ok, "rootless Docker is not installed (docker.io, rootlesskit, slirp4netns): run scripts/install-deps.sh",
                sourceLocation: sourceLocation)
        return ok
    }

    /// Starts the user's rootless dockerd, detached (its log next to the
    /// home), and waits until it answers.
    func startDockerd() throws {
        dockerd = true
        let log = home + "/../dockerd.log"
        let start = """
            import subprocess, sys
            with open(sys.argv[1], "w") as log:
                subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, start_new_session=True)
            """
        let path = "PATH=/usr/share/docker.io/contrib:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        try sh(["/usr/bin/python3", "-c", start, log] + userShell + ["cd \"$HOME\" && exec env \(path) dockerd-rootless.sh"])
        guard waitUntil(timeout: 60, { (try? docker(["version"])) != nil }) else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw CommandFailure(description: "rootless dockerd did not start; its log:\n\(text.suffix(3000))")
        }
    }

    /// The docker CLI on the user's rootless daemon (as root, through its socket).
    @discardableResult
    func docker(_ args: [String]) throws -> String {
        try sh([DockerDaemon.client, "-H", "unix://" + dockerSocket] + args)
    }

    /// Busybox and its applets imported into the rootless daemon.
    func importBusyboxToDocker(tag: String) throws -> String {
        let image = "synsight-e2e-busybox:\(tag)"
        let rootfs = try ContainerHttpd.busyboxRootfs(in: home + "/docker-image")
        try sh(["/bin/sh", "-c", "tar -C '\(rootfs)' -c . | '\(DockerDaemon.client)' -H 'unix://\(dockerSocket)' import - '\(image)'"])
        return image
    }

    /// The data root synsight finds in the user's home.
    var dockerDataRoot: String { home + "/.local/share/docker" }
}
