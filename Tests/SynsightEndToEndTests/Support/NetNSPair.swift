import Foundation

/// A server and a client namespace joined by a veth pair (`NetNS.link`): the
/// server is `<subnet>.1`, the client `<subnet>.2`, and with `v6` also
/// `<v6>1` and `<v6>2`. Ready when both ends are up and no IPv6 address is
/// tentative (or the first connects fail). Always `remove()` it.
struct NetNSPair {
    let server: NetNS
    let client: NetNS
    /// The veth's end in the server's namespace, and in the client's.
    let serverDev: String
    let clientDev: String
    let subnet: String
    let v6: String?

    var serverAddr: String { "\(subnet).1" }
    var clientAddr: String { "\(subnet).2" }
    var serverAddr6: String? { v6.map { "\($0)1" } }
    var clientAddr6: String? { v6.map { "\($0)2" } }

    init(subnet: String = "198.18.0", v6: String? = nil) throws {
        self.subnet = subnet
        self.v6 = v6
        server = try NetNS()
        do {
            client = try NetNS()
        } catch {
            server.remove()
            throw error
        }
        do {
            (serverDev, clientDev) = try server.link(to: client, subnet: subnet)
            try waitReady()
        } catch {
            server.remove()
            client.remove()
            throw error
        }
    }

    private func waitReady() throws {
        if let v6 {
            try sh(["ip", "-n", server.name, "addr", "add", "\(v6)1/64", "dev", serverDev, "nodad"])
            try sh(["ip", "-n", client.name, "addr", "add", "\(v6)2/64", "dev", clientDev, "nodad"])
        }
        let ready = waitUntil(timeout: 5) {
            [(server.name, serverDev), (client.name, clientDev)].allSatisfy { ns, dev in
                let link = (try? sh(["ip", "-n", ns, "link", "show", "dev", dev])) ?? ""
                guard v6 != nil else { return link.contains("state UP") }
                let addrs = (try? sh(["ip", "-n", ns, "-6", "addr", "show", "dev", dev])) ?? ""
                let global = addrs.split(separator: "\n").first { $0.contains("inet6 \(v6!)") } ?? "tentative"
                return link.contains("state UP") && !global.contains("tentative")
            }
        }
        if !ready { throw CommandFailure(description: "veth \(serverDev)/\(clientDev) did not come up") }
    }

    func remove() {
        server.remove()
        client.remove()
    }
}

extension NetNS {
    /// A veth pair: `local` in this namespace with `localAddr`/24, `peer` in
    /// `other` with `peerAddr`/24, both up.
    func veth(_ local: String, _ localAddr: String, to other: NetNS, _ peer: String, _ peerAddr: String) throws {
        try sh(["ip", "link", "add", local, "netns", name, "type", "veth", "peer", "name", peer, "netns", other.name])
        try sh(["ip", "-n", name, "addr", "add", "\(localAddr)/24", "dev", local])
        try sh(["ip", "-n", other.name, "addr", "add", "\(peerAddr)/24", "dev", peer])
        try sh(["ip", "-n", name, "link", "set", local, "up"])
        try sh(["ip", "-n", other.name, "link", "set", peer, "up"])
    }
}
