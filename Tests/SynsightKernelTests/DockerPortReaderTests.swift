import Foundation
import Glibc
import Testing
@testable import SynsightKernel
@testable import SynsightModel

/// Docker's container configs read again while tracing (DockerPortReader):
/// a new container, a changed config and a removed one, in a data root the
/// test writes (no Docker, no root).
@Suite("docker published ports, read again")
struct DockerPortReaderTests {
    static func config(ip: String, hostPort: Int, running: Bool = true) -> String {
        """
        {"ID":"x","Name":"/web","State":{"Running":\(running),"Pid":42},
         "NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"\(hostPort)"}]},
          "Networks":{"bridge":{"IPAddress":"\(ip)","GlobalIPv6Address":""}}}}
        """
    }

    /// Writes a config the way Docker does: a new file renamed over the old one.
    static func write(_ root: String, _ id: String, _ text: String) throws {
        let dir = "\(root)/containers/\(id)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/config.v2.json.tmp", atomically: false, encoding: .utf8)
        #expect(rename(dir + "/config.v2.json.tmp", dir + "/config.v2.json") == 0)
    }

    @Test("a container added, re-created with another address, stopped, removed: each read says what runs now")
    func followsChanges() throws {
        let root = NSTemporaryDirectory() + "synsight-docker-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/containers", withIntermediateDirectories: true)
        let reader = DockerPortReader(roots: [root])
        #expect(reader.read().isEmpty)

        try Self.write(root, "a", Self.config(ip: "172.17.0.2", hostPort: 8080))
        #expect(reader.read() == [PublishedPort(published: "127.0.0.1:8080", target: "172.17.0.2:80")])
        // Unchanged: from the cache (the same answer, nothing re-parsed).
        #expect(reader.read() == [PublishedPort(published: "127.0.0.1:8080", target: "172.17.0.2:80")])

        try Self.write(root, "a", Self.config(ip: "172.17.0.3", hostPort: 8080))
        try Self.write(root, "b", Self.config(ip: "172.17.0.4", hostPort: 9090))
        #expect(Set(reader.read()) == [PublishedPort(published: "127.0.0.1:8080", target: "172.17.0.3:80"),
                                       PublishedPort(published: "127.0.0.1:9090", target: "172.17.0.4:80")])

        try Self.write(root, "a", Self.config(ip: "172.17.0.3", hostPort: 8080, running: false))
        try FileManager.default.removeItem(atPath: root + "/containers/b")
        #expect(reader.read().isEmpty)
        #expect(reader.cache.count == 1, "a removed container's entry is dropped")
    }
}

/// Rootless stores and data roots in users' homes, found at start-up and
/// again while tracing (a user's first rootless container), in homes the
/// test makes (no Docker, no Podman).
@Suite("rootless stores and data roots, found again")
struct RootlessRootsTests {
    @Test("a user's rootless Docker data root and Podman store added once they appear, each with its user; nothing twice")
    func addsNewRoots() throws {
        let base = NSTemporaryDirectory() + "synsight-rootless-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let alice = RootlessUser(name: "alice", uid: 1000, home: base + "/alice")
        let bob = RootlessUser(name: "bob", uid: 1001, home: base + "/bob")
        var sources = WorkloadSources(cgroupMode: .none, dockerDataRoots: ["/var/lib/docker"], podLogRoot: "/x", podLogRootExists: false,
                                      containerLogRoot: "/y", netnsDirExists: false)
        var added = sources.addRootless(users: [alice, bob])
        #expect(!added)
        // Docker's data root counts once it has containers (dockerd made the directory).
        try FileManager.default.createDirectory(atPath: alice.dockerDataRoot, withIntermediateDirectories: true)
        added = sources.addRootless(users: [alice, bob])
        #expect(!added)
        try FileManager.default.createDirectory(atPath: alice.dockerDataRoot + "/containers", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: bob.podmanStore, withIntermediateDirectories: true)
        added = sources.addRootless(users: [alice, bob])
        #expect(added)
        #expect(sources.dockerDataRoots == ["/var/lib/docker", alice.dockerDataRoot])
        #expect(sources.podmanStorageRoots == [bob.podmanStore])
        #expect(sources.rootlessOwners[alice.dockerDataRoot] == alice && sources.rootlessOwners[bob.podmanStore] == bob)
        added = sources.addRootless(users: [alice, bob])
        #expect(!added)
        #expect(sources.doctorLines.contains { $0.contains("rootless: alice's") })
    }
}

/// nerdctl's names (its documented data store layout,
/// `<data root>/<address hash>/names/<namespace>/<name>` holding the id),
/// in a data root the test writes: nerdctl is not packaged in Debian 12.
@Suite("nerdctl names")
struct NerdctlNamesTests {
    @Test("a containerd container named from nerdctl's names files; a bare cgroupfs id becomes containerd's when nerdctl names it")
    func names() throws {
        let root = NSTemporaryDirectory() + "synsight-nerdctl-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let web = String(repeating: "a1", count: 32), db = String(repeating: "b2", count: 32)
        for (ns, name, id) in [("default", "web", web), ("k8s.io", "db", db), ("default", "junk", "not-an-id")] {
            let dir = "\(root)/1935db59/names/\(ns)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try id.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
        }
        var sources = WorkloadSources(cgroupMode: .none, dockerDataRoots: [], podLogRoot: "/x", podLogRootExists: false,
                                      containerLogRoot: "/y", netnsDirExists: false)
        sources.nerdctlDataRoots = [root]
        let resolver = WorkloadResolver(sources: sources)
        var scoped = ContainerRef(runtime: .containerd, id: web)
        #expect(resolver.nameContainer(&scoped, pid: nil))
        #expect(scoped.name == "web")
        var bare = ContainerRef(runtime: nil, id: db)
        resolver.nameContainer(&bare, pid: nil)
        #expect(bare.runtime == .containerd && bare.name == "db")
        var unknown = ContainerRef(runtime: .containerd, id: String(repeating: "c3", count: 32))
        #expect(!resolver.nameContainer(&unknown, pid: nil))
        #expect(unknown.name == nil && resolver.nerdctlNames.count == 2)
        #expect(sources.doctorLines.contains { $0.hasPrefix("nerdctl names") && $0.contains(root) })
    }
}
