import Foundation
import Testing

/// What the Docker and Podman tests share: the busybox image's root file
/// system, and finding the httpd a container runs.
enum ContainerHttpd {
    /// `dir`/rootfs with /bin/busybox (Debian's busybox-static) and the
    /// applets the tests run (sh, sleep, httpd, nc); returns its path.
    static func busyboxRootfs(in dir: String) throws -> String {
        let rootfs = dir + "/rootfs"
        try FileManager.default.createDirectory(atPath: rootfs + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "sleep", "httpd", "nc"] {
            try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        return rootfs
    }

    /// The httpd child of a container's first process (`pid1`) once it
    /// listens on `port` in the container's namespace, and that namespace's inode.
    static func find(pid1: Int, port: Int, container: String, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (httpd: Int?, netns: Int) {
        var httpd: Int?
        #expect(waitUntil {
            httpd = (try? sh(["ps", "-o", "pid=,comm=", "--ppid", String(pid1)]))?.split(separator: "\n")
                .first { $0.hasSuffix("httpd") }.flatMap { Int($0.split(separator: " ").first ?? "") }
            let listening = (try? sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "ss", "-Hltn", "sport = :\(port)"])) ?? ""
            return httpd != nil && !listening.isEmpty
        }, "httpd did not listen on \(port) in container \(container)", sourceLocation: sourceLocation)
        let netns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(pid1)/ns/net"])
            .trimmingCharacters(in: .whitespacesAndNewlines)), sourceLocation: sourceLocation)
        return (httpd, netns)
    }
}
