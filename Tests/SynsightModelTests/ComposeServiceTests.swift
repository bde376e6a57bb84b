@testable import SynsightModel
import Testing

/// The Compose and Swarm services named from container labels, as
/// docker-compose v1, docker compose v2, podman-compose and Swarm write them.
@Suite struct ComposeServiceTests {
    /// docker-compose 1.29's labels (read from a real container of it):
    /// config_files relative to working_dir.
    static let v1: [String: String] = [
        "com.docker.compose.config-hash": "0038641c", "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False", "com.docker.compose.project": "shop",
        "com.docker.compose.project.config_files": "docker-compose.yml",
        "com.docker.compose.project.working_dir": "/srv/shop", "com.docker.compose.service": "web",
        "com.docker.compose.version": "1.29.2",
    ]

    @Test("docker-compose v1: project, service, the file made absolute, not a one-off")
    func composeV1() throws {
        let s = try #require(ComposeService(labels: Self.v1))
        #expect(s.orchestrator == .compose && s.project == "shop" && s.name == "web" && !s.oneoff)
        #expect(s.configFiles == ["/srv/shop/docker-compose.yml"])
        #expect(s.phrase == "compose service shop/web")
        #expect(s.upCommand(runtime: .docker) == "docker compose -p shop -f /srv/shop/docker-compose.yml up -d web")
        #expect(s.definedIn == "service web in /srv/shop/docker-compose.yml")
    }

    @Test("docker compose v2: several absolute files; a one-off; podman-compose's command")
    func composeV2() throws {
        var labels = Self.v1
        labels["com.docker.compose.project.config_files"] = "/srv/shop/compose.yaml,/srv/shop/compose.override.yaml"
        labels["com.docker.compose.oneoff"] = "True"
        let s = try #require(ComposeService(labels: labels))
        #expect(s.configFiles == ["/srv/shop/compose.yaml", "/srv/shop/compose.override.yaml"])
        #expect(s.oneoff)
        #expect(s.upCommand(runtime: .podman)
                == "podman-compose -p shop -f /srv/shop/compose.yaml -f /srv/shop/compose.override.yaml up -d web")
        #expect(s.definedIn == "service web in /srv/shop/compose.yaml + /srv/shop/compose.override.yaml")
        #expect(s.json["oneoff"] == .bool(true))
    }

    @Test("podman-compose's project label alone; Swarm's stack and service; no labels: no service")
    func otherLabels() throws {
        let p = try #require(ComposeService(labels: ["io.podman.compose.project": "blog", "com.docker.compose.service": "db"]))
        #expect(p.label == "blog/db" && p.configFiles.isEmpty)
        #expect(p.definedIn == "service db in project blog's compose file")
        let w = try #require(ComposeService(labels: ["com.docker.swarm.service.name": "shop_web", "com.docker.stack.namespace": "shop"]))
        #expect(w.orchestrator == .swarm && w.project == "shop" && w.label == "shop_web")
        #expect(w.phrase == "swarm service shop_web")
        #expect(w.upCommand(runtime: .docker) == "docker service update --force shop_web")
        #expect(ComposeService(labels: [:]) == nil)
        #expect(ComposeService(labels: ["com.docker.compose.service": ""]) == nil)
        #expect(ComposeService(labels: ["maintainer": "x"]) == nil)
    }

    @Test("a name or path a shell would split is quoted in the command")
    func quoting() throws {
        let s = ComposeService(orchestrator: .compose, project: "my shop", name: "w'eb", configFiles: ["/srv/a b/compose.yaml"])
        #expect(s.upCommand(runtime: .docker) == #"docker compose -p 'my shop' -f '/srv/a b/compose.yaml' up -d 'w'\''eb'"#)
    }

    @Test("from Docker's config.v2.json: the name and Config.Labels; JSON field order")
    func fromDockerConfig() throws {
        let config = #"{"Name":"/shop_web_1","Config":{"Labels":{"com.docker.compose.project":"shop","#
            + #""com.docker.compose.service":"web","com.docker.compose.project.working_dir":"/srv/shop","#
            + #""com.docker.compose.project.config_files":"docker-compose.yml","n":1}}}"#
        let found = WorkloadNames.dockerContainer(configJSON: Array(config.utf8))
        #expect(found.name == "shop_web_1")
        let s = try #require(found.service)
        #expect(s.json == .object([("orchestrator", .string("compose")), ("project", .string("shop")), ("name", .string("web")),
                                   ("config_files", .array([.string("/srv/shop/docker-compose.yml")])),
                                   ("working_dir", .string("/srv/shop"))]))
        let plain = WorkloadNames.dockerContainer(configJSON: Array(#"{"Name":"/web","Config":{"Labels":null}}"#.utf8))
        #expect(plain.name == "web" && plain.service == nil)
        let id = WorkloadIdentity(container: ContainerRef(runtime: .docker, id: String(repeating: "a", count: 64),
                                                          name: "shop_web_1", service: s))
        #expect(id.words == ["compose service shop/web", "container shop_web_1"])
    }

    @Test("the advice for a Compose container: the service's file and docker compose up, not docker run or docker update")
    func advice() throws {
        let s = try #require(ComposeService(labels: Self.v1))
        var f = Advice.Facts(port: 18080)
        f.publisher(DockerPortBinding(id: "4f2a9c", name: "shop_web_1", service: s, hostIP: "127.0.0.1", hostPort: 18080,
                                      containerPort: 80))
        let stopped = Advice.for(reason: .noListener, cause: .noListener(.publisherStopped), facts: f).fix
        #expect(stopped.contains("docker compose -p shop -f /srv/shop/docker-compose.yml up -d web"), "\(stopped)")
        #expect(stopped.contains("restart: unless-stopped in service web in /srv/shop/docker-compose.yml"), "\(stopped)")
        #expect(!stopped.contains("docker start"))
        let other = Advice.for(reason: .noListener, cause: .noListener(.boundToOtherAddress), facts: f).fix
        #expect(other.contains("the ports: of service web in /srv/shop/docker-compose.yml"), "\(other)")
        #expect(!other.contains("docker run"))
        var cpu = Advice.Facts()
        cpu.workload = WorkloadIdentity(container: ContainerRef(runtime: .docker, id: "x", name: "shop_web_1", service: s))
        let limit = Advice.for(reason: .acceptQueueFull, cause: .acceptQueueFull(.listenerThrottled), facts: cpu).fix
        #expect(limit.contains("cpus: (or deploy.resources.limits.cpus) of service web in /srv/shop/docker-compose.yml"), "\(limit)")
    }

    @Test("an exited listener's fix in the terms of what ran it: a pod, a Compose service, a container, a service unit; a scope gets the generic fix")
    func exitedFix() throws {
        func fix(_ w: WorkloadIdentity?, killed: Bool = true) -> String {
            var f = Advice.Facts(killedBySignal: killed)
            f.workload = w
            return Advice.for(reason: .noListener, cause: .noListener(.listenerExited), facts: f).fix
        }
        let pod = fix(WorkloadIdentity(pod: PodRef(uid: "u", namespace: "shop", name: "api-7d9f", container: "api")))
        #expect(pod.contains("kubectl logs -n shop api-7d9f -c api --previous"), "\(pod)")
        let compose = fix(WorkloadIdentity(container: ContainerRef(runtime: .docker, id: "x", name: "shop_web_1",
                                                                   service: ComposeService(labels: Self.v1))))
        #expect(compose.contains("docker logs shop_web_1") && compose.contains("docker compose -p shop -f /srv/shop/docker-compose.yml up -d web"),
                "\(compose)")
        let podman = fix(WorkloadIdentity(container: ContainerRef(runtime: .podman, id: "x", name: "my web")), killed: false)
        #expect(podman.hasPrefix("find why it exited (podman logs 'my web',") && podman.contains("podman restart 'my web'"), "\(podman)")
        let unit = fix(WorkloadIdentity(unit: "nginx.service"))
        #expect(unit.contains("journalctl -u nginx.service") && unit.contains("systemctl restart nginx.service"), "\(unit)")
        let user = fix(WorkloadIdentity(unit: "app.service", userManager: "user@1000.service"))
        #expect(user.contains("journalctl --user -u app.service"), "\(user)")
        #expect(fix(WorkloadIdentity(unit: "session-3.scope")).hasPrefix("restart the service and find out who sent the signal"))
        #expect(fix(nil, killed: false) == "restart the service and check its logs for why it exited")
    }
}
