import Foundation
import Testing

/// Docker's own isolation of its networks from one another: a container on
/// one user-defined network connecting to a container on another is dropped
/// by the DOCKER-ISOLATION-STAGE-2 rule Docker wrote (the host forwards
/// between the two bridges). In the Docker suite, which runs one test at a time.
extension DockerWorkloadTests {
    @Test("two Docker networks: a container's connect to a container on the other network is dropped by Docker's isolation rule; the drop and the client's timeout name the rule, the client's container, the network and Docker's fix (docker network connect), a network no container is on named from Docker's store; an --internal network's edge drops (and the host not forwarding its bridge), and a container without a network has no route")
    func isolatedNetworks() throws {
        guard DockerDaemon.installed() else { return }
        let before = HostNetworkState.capture()
        try crossNetworkConnect()
        let changes = HostNetworkState.capture().changes(since: before)
        #expect(changes.isEmpty, "the host was left changed:\n\(changes.joined(separator: "\n"))")
    }

    func crossNetworkConnect() throws {
        let daemon = try DockerDaemon(bridge: "198.19.238.1/24", iptables: true)
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let (front, back) = ("synsight-e2e-front-\(tag)", "synsight-e2e-back-\(tag)")
        try daemon.docker(["network", "create", "--subnet", "198.19.236.0/24", front])
        defer { _ = try? daemon.docker(["network", "rm", front]) }
        try daemon.docker(["network", "create", "--subnet", "198.19.237.0/24", back])
        defer { _ = try? daemon.docker(["network", "rm", back]) }
        let (web, api) = ("synsight-e2e-web-\(tag)", "synsight-e2e-api-\(tag)")
        let port = randomPort()
        try daemon.docker(["run", "-d", "--name", api, "--network", back, "--ip", "198.19.237.10", image,
                           "/bin/sh", "-c", "httpd -f -p \(port) & while true; do sleep 1; done"])
        defer { _ = try? daemon.docker(["rm", "-f", api]) }
        try daemon.docker(["run", "-d", "--name", web, "--network", front, image,
                           "/bin/sh", "-c", "while true; do sleep 1; done"])
        defer { _ = try? daemon.docker(["rm", "-f", web]) }
        _ = try daemon.httpd(in: api, port: port)
        // The host routes between the two bridges (forwarding on the client's
        // bridge only; the bridge and its sysctl go with the network).
        let frontBridge = "br-" + String(try daemon.docker(["network", "inspect", "-f", "{{.Id}}", front]).prefix(12))
        try sh(["sysctl", "-qw", "net.ipv4.conf.\(frontBridge).forwarding=1"])
        let isolation = try sh(["iptables", "-w", "-S", "DOCKER-ISOLATION-STAGE-2"])
        #expect(isolation.contains("-j DROP"), "Docker wrote no isolation rule: \(isolation)")

        // The client gives up after one SYN retransmission (its container's own sysctl).
        let webPid = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", web]).trimmingCharacters(in: .whitespacesAndNewlines)))
        try sh(["nsenter", "--net=/proc/\(webPid)/ns/net", "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        let backID = try daemon.docker(["network", "inspect", "-f", "{{.Id}}", back]).prefix(12)

        let trace = try TraceSession(["--port", String(port)])
        _ = try daemon.docker(["exec", web, "nc", "198.19.237.10", String(port)], allowFailure: true)
        let drop = try #require(trace.waitForRecord {
            $0.string("kind") == "drop" && $0.int("port") == port
        }, "no drop record; stderr: \(trace.stderr); records: \(trace.stdout)")
        #expect(drop.string("reason") == "firewall_drop" && drop.string("cause") == "network_isolation", "record: \(drop)")
        #expect(drop.evidence["chain"] as? String == "DOCKER-ISOLATION-STAGE-2" && drop.evidence["rule_owner"] as? String == "docker")
        #expect(drop.evidence["docker_network"] as? String == String(backID) && drop.evidence["bridge"] as? String == "br-\(backID)",
                "record: \(drop)")
        #expect(((drop.object("client")?["container"] as? [String: Any])?["name"] as? String) == web, "record: \(drop)")
        let hint = drop.string("hint") ?? ""
        #expect(drop.evidence["docker_network_name"] as? String == back, "record: \(drop)")
        #expect(hint.contains("from container \(web) to 198.19.237.10:\(port) on network \(back) (id \(backID), bridge br-\(backID))"), "\(hint)")
        #expect(hint.contains("docker network connect \(back) \(web)") && !hint.contains("iptables -D"), "\(hint)")
        // The client's timeout is explained by that drop, with Docker's fix.
        let timeout = try #require(trace.waitForRecord(timeout: 15) { $0.string("kind") == "connect_failure" && $0.int("port") == port },
                                   "no timeout record; records: \(trace.stdout)")
        #expect(timeout.string("reason") == "connect_timeout" && timeout.string("cause") == "dropped_on_host", "record: \(timeout)")
        #expect(timeout.string("netns_name") == "container \(web)")
        #expect((timeout.string("hint") ?? "").contains("docker network connect \(back) \(web)"), "record: \(timeout)")

        // A network no container is attached to (its containers removed, a
        // client still dialling an old address): named from libnetwork's
        // store, since no container's config names it.
        let empty = "synsight-e2e-empty-\(tag)"
        try daemon.docker(["network", "create", "--subnet", "198.19.234.0/24", empty])
        defer { _ = try? daemon.docker(["network", "rm", empty]) }
        let emptyID = try daemon.docker(["network", "inspect", "-f", "{{.Id}}", empty]).prefix(12)
        _ = try daemon.docker(["exec", web, "nc", "198.19.234.10", String(port)], allowFailure: true)
        let unattached = try #require(trace.waitForRecord {
            $0.string("kind") == "drop" && $0.int("port") == port && ($0.object("local")?["addr"] as? String) == "198.19.234.10"
        }, "no drop record for the network without containers; records: \(trace.stdout)")
        #expect(unattached.string("cause") == "network_isolation" && unattached.evidence["docker_network"] as? String == String(emptyID),
                "record: \(unattached)")
        #expect(unattached.evidence["docker_network_name"] as? String == empty, "record: \(unattached)")

        // A network created --internal: Docker drops what crosses its edge,
        // here web's SYN to a container on it.
        let internalNet = "synsight-e2e-int-\(tag)", job = "synsight-e2e-job-\(tag)"
        try daemon.docker(["network", "create", "--internal", "--subnet", "198.19.235.0/24", internalNet])
        defer { _ = try? daemon.docker(["network", "rm", internalNet]) }
        try daemon.docker(["run", "-d", "--name", job, "--network", internalNet, "--ip", "198.19.235.10", image,
                           "/bin/sh", "-c", "httpd -f -p \(port) & while true; do sleep 1; done"])
        defer { _ = try? daemon.docker(["rm", "-f", job]) }
        _ = try daemon.httpd(in: job, port: port)
        let internalID = try daemon.docker(["network", "inspect", "-f", "{{.Id}}", internalNet]).prefix(12)
        let jobPid = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", job]).trimmingCharacters(in: .whitespacesAndNewlines)))
        try sh(["nsenter", "--net=/proc/\(jobPid)/ns/net", "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        _ = try daemon.docker(["exec", web, "nc", "198.19.235.10", String(port)], allowFailure: true)
        let closed = try #require(trace.waitForRecord {
            $0.string("kind") == "drop" && $0.int("port") == port && ($0.object("local")?["addr"] as? String) == "198.19.235.10"
        }, "no drop record at the internal network; records: \(trace.stdout)")
        #expect(closed.string("cause") == "internal_network" && closed.evidence["chain"] as? String == "DOCKER-ISOLATION-STAGE-1",
                "record: \(closed)")
        #expect(closed.evidence["docker_network"] as? String == String(internalID), "record: \(closed)")
        let internalHint = closed.string("hint") ?? ""
        #expect(internalHint.contains("at the edge of internal network \(internalNet) (id \(internalID)") && internalHint.contains("--internal"), "\(internalHint)")

        // Out of the internal network, while the host does not forward what
        // arrives on its bridge: the kernel drops it before any rule.
        let internalBridge = "br-\(internalID)"
        _ = try daemon.docker(["exec", job, "nc", "198.19.237.10", String(port)], allowFailure: true)
        let unforwarded = try #require(trace.waitForRecord {
            $0.string("reason") == "packet_dropped" && $0.int("port") == port && ($0.object("remote")?["addr"] as? String) == "198.19.235.10"
        }, "no drop record for the unforwarded SYN; records: \(trace.stdout)")
        #expect(unforwarded.string("cause") == "forwarding_disabled" && unforwarded.evidence["interface"] as? String == internalBridge,
                "record: \(unforwarded)")
        #expect(unforwarded.evidence["sysctl"] as? String == "net.ipv4.conf.\(internalBridge).forwarding")
        #expect((unforwarded.string("hint") ?? "").contains("does not forward IPv4 arriving on \(internalBridge)"), "record: \(unforwarded)")
        // Forwarding on: Docker's own rule closes the internal network's edge.
        try sh(["sysctl", "-qw", "net.ipv4.conf.\(internalBridge).forwarding=1"])
        _ = try daemon.docker(["exec", job, "nc", "198.19.237.10", String(port)], allowFailure: true)
        let out = try #require(trace.waitForRecord {
            $0.string("reason") == "firewall_drop" && $0.int("port") == port && ($0.object("remote")?["addr"] as? String) == "198.19.235.10"
        }, "no firewall drop out of the internal network; records: \(trace.stdout)")
        #expect(out.string("cause") == "internal_network" && out.evidence["bridge"] as? String == internalBridge, "record: \(out)")
        #expect(((out.object("client")?["container"] as? [String: Any])?["name"] as? String) == job, "record: \(out)")

        // A container without a network (--network none): no route at all.
        let solo = "synsight-e2e-solo-\(tag)"
        try daemon.docker(["run", "-d", "--name", solo, "--network", "none", image, "/bin/sh", "-c", "while true; do sleep 1; done"])
        defer { _ = try? daemon.docker(["rm", "-f", solo]) }
        _ = try daemon.docker(["exec", solo, "nc", "198.19.237.10", String(port)], allowFailure: true)
        let noRoute = try #require(trace.waitForRecord { $0.string("reason") == "no_route" && $0.int("port") == port },
                                   "no no_route record from the container without a network; records: \(trace.stdout)")
        #expect(noRoute.string("cause") == "no_matching_route" && noRoute.string("netns_name") == "container \(solo)", "record: \(noRoute)")
        let noRouteHint = noRoute.string("hint") ?? ""
        #expect(noRouteHint.contains("container \(solo) has no IPv4 route out") && noRouteHint.contains("docker network connect <network> \(solo)"),
                "\(noRouteHint)")
        trace.stop()
    }
}
