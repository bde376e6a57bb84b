import Foundation
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

let dockerID = "3f4e8a9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
let podUID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"

/// What one /proc/<pid>/cgroup text must give.
struct CgroupCase: CustomStringConvertible, Sendable {
    var name: String
    var text: String
    var cgroup: String?
    var unit: String? = nil
    var userManager: String? = nil
    var runtime: ContainerRuntime? = nil
    var containerID: String? = nil
    var podUID: String? = nil
    var qos: PodQoS? = nil
    var none = false

    var description: String { name }
}

let cgroupCases: [CgroupCase] = [
    CgroupCase(name: "systemd v2 service", text: "0::/system.slice/nginx.service\n",
               cgroup: "/system.slice/nginx.service", unit: "nginx.service"),
    CgroupCase(name: "systemd v1 (name=systemd) on a hybrid host, controllers at /",
               text: """
               12:memory:/system.slice/nginx.service
               11:pids:/
               1:name=systemd:/system.slice/nginx.service
               0::/
               """,
               cgroup: "/system.slice/nginx.service", unit: "nginx.service"),
    CgroupCase(name: "hybrid: v2 preferred when both name the unit",
               text: "1:name=systemd:/system.slice/a.service\n0::/system.slice/a.service\n",
               cgroup: "/system.slice/a.service", unit: "a.service"),
    CgroupCase(name: "escaped unit name", text: "0::/system.slice/system-getty.slice/getty@tty\\x2d1.service\n",
               cgroup: "/system.slice/system-getty.slice/getty@tty\\x2d1.service", unit: "getty@tty-1.service"),
    CgroupCase(name: "user manager app", text: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1234.scope\n",
               cgroup: "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1234.scope",
               unit: "vte-spawn-1234.scope", userManager: "user@1000.service"),
    CgroupCase(name: "user manager service", text: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service\n",
               cgroup: "/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service",
               unit: "syncthing.service", userManager: "user@1000.service"),
    CgroupCase(name: "the user manager itself", text: "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
               cgroup: "/user.slice/user-1000.slice/user@1000.service/init.scope",
               unit: "init.scope", userManager: "user@1000.service"),
    CgroupCase(name: "login session", text: "0::/user.slice/user-1000.slice/session-3.scope\n",
               cgroup: "/user.slice/user-1000.slice/session-3.scope", unit: "session-3.scope"),
    CgroupCase(name: "docker, cgroupfs driver, v1 (this host's dockerd)",
               text: (1...9).map { "\($0):x\($0):/docker/\(dockerID)" }.joined(separator: "\n") + "\n0::/\n",
               cgroup: "/docker/\(dockerID)", runtime: .docker, containerID: dockerID),
    CgroupCase(name: "docker, systemd driver, v2", text: "0::/system.slice/docker-\(dockerID).scope\n",
               cgroup: "/system.slice/docker-\(dockerID).scope", runtime: .docker, containerID: dockerID),
    CgroupCase(name: "docker, v2, process in a child cgroup", text: "0::/system.slice/docker-\(dockerID).scope/init\n",
               cgroup: "/system.slice/docker-\(dockerID).scope/init", runtime: .docker, containerID: dockerID),
    CgroupCase(name: "kubelet systemd driver, containerd, besteffort",
               text: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(podUID.replacing("-", with: "_")).slice/cri-containerd-\(dockerID).scope\n",
               cgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(podUID.replacing("-", with: "_")).slice/cri-containerd-\(dockerID).scope",
               runtime: .containerd, containerID: dockerID, podUID: podUID, qos: .besteffort),
    CgroupCase(name: "kubelet systemd driver, cri-o, burstable",
               text: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(podUID.replacing("-", with: "_")).slice/crio-\(dockerID).scope\n",
               cgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(podUID.replacing("-", with: "_")).slice/crio-\(dockerID).scope",
               runtime: .crio, containerID: dockerID, podUID: podUID, qos: .burstable),
    CgroupCase(name: "kubelet systemd driver, guaranteed (no QoS slice)",
               text: "0::/kubepods.slice/kubepods-pod\(podUID.replacing("-", with: "_")).slice/cri-containerd-\(dockerID).scope\n",
               cgroup: "/kubepods.slice/kubepods-pod\(podUID.replacing("-", with: "_")).slice/cri-containerd-\(dockerID).scope",
               runtime: .containerd, containerID: dockerID, podUID: podUID, qos: .guaranteed),
    CgroupCase(name: "kubelet cgroupfs driver, v1, besteffort",
               text: "4:memory:/kubepods/besteffort/pod\(podUID)/\(dockerID)\n1:name=systemd:/kubepods/besteffort/pod\(podUID)/\(dockerID)\n",
               cgroup: "/kubepods/besteffort/pod\(podUID)/\(dockerID)", containerID: dockerID, podUID: podUID, qos: .besteffort),
    CgroupCase(name: "kubelet cgroupfs driver, guaranteed",
               text: "0::/kubepods/pod\(podUID)/\(dockerID)\n",
               cgroup: "/kubepods/pod\(podUID)/\(dockerID)", containerID: dockerID, podUID: podUID, qos: .guaranteed),
    CgroupCase(name: "pod sandbox level only (pause container not yet placed)",
               text: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(podUID.replacing("-", with: "_")).slice\n",
               cgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(podUID.replacing("-", with: "_")).slice",
               podUID: podUID, qos: .besteffort),
    CgroupCase(name: "static pod UID (32 hex digits)",
               text: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice/cri-containerd-\(dockerID).scope\n",
               cgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice/cri-containerd-\(dockerID).scope",
               runtime: .containerd, containerID: dockerID, podUID: "0123456789abcdef0123456789abcdef", qos: .burstable),
    CgroupCase(name: "podman, systemd driver, user session",
               text: "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(dockerID).scope/container\n",
               cgroup: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(dockerID).scope/container",
               runtime: .podman, containerID: dockerID),
    CgroupCase(name: "nerdctl, systemd driver",
               text: "0::/system.slice/nerdctl-\(dockerID).scope\n",
               cgroup: "/system.slice/nerdctl-\(dockerID).scope", runtime: .containerd, containerID: dockerID),
    CgroupCase(name: "rootless docker, systemd driver, user session",
               text: "0::/user.slice/user-1000.slice/user@1000.service/user.slice/docker-\(dockerID).scope\n",
               cgroup: "/user.slice/user-1000.slice/user@1000.service/user.slice/docker-\(dockerID).scope",
               runtime: .docker, containerID: dockerID),
    CgroupCase(name: "podman conmon is not the container",
               text: "0::/machine.slice/libpod-conmon-\(dockerID).scope\n",
               cgroup: "/machine.slice/libpod-conmon-\(dockerID).scope", unit: "libpod-conmon-\(dockerID).scope"),
    CgroupCase(name: "podman, cgroupfs driver", text: "0::/libpod_parent/libpod-\(dockerID)\n",
               cgroup: "/libpod_parent/libpod-\(dockerID)", runtime: .podman, containerID: dockerID),
    CgroupCase(name: "LXC 4+, LXD, Incus: the payload cgroup names the container (read from a real lxc-execute)",
               text: (1...9).map { "\($0):x\($0):/lxc.payload.web" }.joined(separator: "\n") + "\n0::/lxc.payload.web\n",
               cgroup: "/lxc.payload.web", runtime: .lxc, containerID: "web"),
    CgroupCase(name: "a system container running systemd: the unit inside it is kept",
               text: "0::/lxc.payload.web/system.slice/nginx.service\n",
               cgroup: "/lxc.payload.web/system.slice/nginx.service", unit: "nginx.service", runtime: .lxc, containerID: "web"),
    CgroupCase(name: "Proxmox VE: /lxc/<vmid>/ns", text: "0::/lxc/101/ns/system.slice/postgresql.service\n",
               cgroup: "/lxc/101/ns/system.slice/postgresql.service", unit: "postgresql.service", runtime: .lxc, containerID: "101"),
    CgroupCase(name: "LXC's monitor (lxc-start) is not the container", text: "0::/lxc.monitor.web\n", cgroup: "/lxc.monitor.web"),
    CgroupCase(name: "docker running systemd (cgroupns): the unit inside", text: "0::/docker/\(dockerID)/system.slice/sshd.service\n",
               cgroup: "/docker/\(dockerID)/system.slice/sshd.service", unit: "sshd.service", runtime: .docker, containerID: dockerID),
    CgroupCase(name: "lxc below the top is a plain directory", text: "0::/system.slice/lxc/web\n", cgroup: "/system.slice/lxc/web"),
    CgroupCase(name: "read from inside a cgroup namespace (synsight in a pod)",
               text: "0::/../../../system.slice/nginx.service\n",
               cgroup: "/system.slice/nginx.service", unit: "nginx.service"),
    CgroupCase(name: "deleted cgroup", text: "0::/system.slice/gone.service (deleted)\n",
               cgroup: "/system.slice/gone.service", unit: "gone.service"),
    CgroupCase(name: "a controller-only path names nothing (this sandbox)",
               text: "9:name=systemd:/\n4:memory:/process_api/aa1c460f63516382d29208b56c54bca2\n0::/\n",
               cgroup: nil, none: true),
    CgroupCase(name: "plain v2 path without a unit", text: "0::/synsight-test/leaf\n", cgroup: "/synsight-test/leaf"),
    CgroupCase(name: "root everywhere", text: "1:name=systemd:/\n0::/\n", cgroup: nil, none: true),
    CgroupCase(name: "garbage", text: "not a cgroup file\n::\nx:y:z\n-1::/a.service\n0::relative.service\n\u{0}\u{1}",
               cgroup: nil, none: true),
    CgroupCase(name: "empty", text: "", cgroup: nil, none: true),
    CgroupCase(name: "almost a container id (63 hex digits)", text: "0::/docker/\(dockerID.dropLast())\n",
               cgroup: "/docker/\(dockerID.dropLast())"),
    CgroupCase(name: "upper-case hex is not a container id", text: "0::/docker/\(dockerID.uppercased())\n",
               cgroup: "/docker/\(dockerID.uppercased())"),
    CgroupCase(name: "pod slice with a malformed UID", text: "0::/kubepods.slice/kubepods-podnot_a_uid.slice\n",
               cgroup: "/kubepods.slice/kubepods-podnot_a_uid.slice"),
]

@Suite("WorkloadIdentity")
struct WorkloadIdentityTests {
    @Test(arguments: cgroupCases)
    func cgroupLayouts(_ c: CgroupCase) {
        let id = CgroupIdentity.identity(cgroupFile: c.text)
        if c.none {
            #expect(id == nil)
            return
        }
        #expect(id?.cgroup == c.cgroup)
        #expect(id?.unit == c.unit)
        #expect(id?.userManager == c.userManager)
        #expect(id?.container?.id == c.containerID)
        #expect(id?.container?.runtime == c.runtime)
        #expect(id?.pod?.uid == c.podUID)
        #expect(id?.pod?.qos == c.qos)
    }

    @Test func unescapesSystemdNames() {
        #expect(SystemdEscape.unescape("a\\x2db\\x2dc.service") == "a-b-c.service")
        #expect(SystemdEscape.unescape("caf\\xc3\\xa9.service") == "café.service")
        #expect(SystemdEscape.unescape("broken\\x2") == "broken\\x2")
        #expect(SystemdEscape.unescape("not\\xZZhex") == "not\\xZZhex")
        #expect(SystemdEscape.unescape("plain.service") == "plain.service")
    }

    @Test func cgroupLines() {
        let lines = CgroupIdentity.lines("12:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\nbad\n")
        #expect(lines.count == 3)
        #expect(lines[0].controllers == ["cpu", "cpuacct"])
        #expect(lines[1].isSystemdV1)
        #expect(lines[2].isV2 && lines[2].path == "/c")
    }

    @Test func dockerConfigName() {
        let config = #"{"ID":"\#(dockerID)","Name":"/web","State":{"Pid":4410,"Running":true},"Config":{"Hostname":"x"}}"#
        #expect(WorkloadNames.dockerName(configJSON: Array(config.utf8)) == "web")
        #expect(WorkloadNames.dockerName(configJSON: Array(#"{"Name":""}"#.utf8)) == nil)
        #expect(WorkloadNames.dockerName(configJSON: Array("{not json".utf8)) == nil)
        #expect(WorkloadNames.dockerName(configJSON: []) == nil)
    }

    @Test func dockerDataRoots() {
        #expect(WorkloadNames.dockerDataRoots(commandLine: ["/usr/sbin/dockerd", "--data-root", "/srv/d", "-H", "unix:///x"]) == ["/srv/d"])
        #expect(WorkloadNames.dockerDataRoots(commandLine: ["dockerd", "--data-root=/a", "-g", "/b"]) == ["/a", "/b"])
        #expect(WorkloadNames.dockerDataRoots(commandLine: ["dockerd", "--data-root"]) == [])
        #expect(WorkloadNames.dockerDataRoots(commandLine: ["dockerd", "--data-root", "relative"]) == [])
        #expect(WorkloadNames.isDockerd(commandLine: ["/usr/bin/dockerd", "-H", "x"]))
        #expect(!WorkloadNames.isDockerd(commandLine: ["/usr/bin/containerd"]))
        #expect(!WorkloadNames.isDockerd(commandLine: []))
    }

    @Test("Podman names: conmon's -c/-n (for that container only), the container store, storage.conf's graphroot")
    func podmanNames() {
        let id = String(repeating: "ab", count: 32)
        let conmon = ["/usr/bin/conmon", "--api-version", "1", "-c", id, "-u", id, "-r", "/usr/bin/runc", "-n", "web",
                      "--exit-dir", "/run/libpod/exits"]
        #expect(WorkloadNames.conmonName(commandLine: conmon, containerID: id) == "web")
        #expect(WorkloadNames.conmonName(commandLine: conmon, containerID: String(repeating: "cd", count: 32)) == nil)
        #expect(WorkloadNames.conmonName(commandLine: ["/usr/bin/crun", "-c", id, "-n", "web"], containerID: id) == nil)
        #expect(WorkloadNames.conmonName(commandLine: ["conmon", "-c", id, "-n"], containerID: id) == nil)
        let store = #"[{"id":"\#(id)","names":["web","alias"],"image":"x"},{"id":"ff","names":[]},{"names":["x"]}]"#
        #expect(WorkloadNames.podmanNames(containersJSON: Array(store.utf8)) == [id: "web"])
        #expect(WorkloadNames.podmanNames(containersJSON: Array("{}".utf8)).isEmpty)
        let conf = """
            [storage]
            driver = "overlay"
            # graphroot = "/not/this"
            graphroot = "/srv/containers" # moved to the big disk
            """
        #expect(WorkloadNames.storageGraphRoot(storageConf: conf) == "/srv/containers")
        #expect(WorkloadNames.storageGraphRoot(storageConf: "graphroot = \"relative\"") == nil)
    }

    @Test func podLogDirectories() {
        let p = WorkloadNames.podLogDirectory("shop_api-7d9f_\(podUID)")
        #expect(p?.namespace == "shop" && p?.pod == "api-7d9f" && p?.uid == podUID)
        #expect(WorkloadNames.podLogDirectory("shop_api_notauid") == nil)
        #expect(WorkloadNames.podLogDirectory("a_b_c_\(podUID)") == nil)
        #expect(WorkloadNames.podLogDirectory("_api_\(podUID)") == nil)
        let l = WorkloadNames.containerLogLink("api-7d9f_shop_api-server-\(dockerID).log")
        #expect(l?.pod == "api-7d9f" && l?.namespace == "shop" && l?.container == "api-server" && l?.id == dockerID)
        #expect(WorkloadNames.containerLogLink("api_shop_c-\(dockerID.dropLast()).log") == nil)
        #expect(WorkloadNames.containerLogLink("api_shop_c-\(dockerID)") == nil)
    }

    @Test func nodeIdentity() {
        let n = NodeIdentity(hostname: "node-1", machineIDFile: "3d1219c7c4c5404aaa1f6d2a48adfda4\n",
                             bootIDFile: "e1d3c483-4289-4f24-8937-a50ff6d082f0\n")
        #expect(n.machineID == "3d1219c7c4c5404aaa1f6d2a48adfda4")
        #expect(n.bootID == "e1d3c483-4289-4f24-8937-a50ff6d082f0")
        let empty = NodeIdentity(hostname: "", machineIDFile: "\n", bootIDFile: nil)
        #expect(empty.isEmpty)
    }

    @Test func jsonAndTextCarryTheWorkloadEscaped() throws {
        let hostile = "web\u{1b}[31m\"\n\u{202e}"
        var r = Record(ts: 1, kind: .refusal, reason: .noListener, cause: .noListener(.listenerExited), port: 80)
        r.process = ProcessRef(pid: 4410, comm: "nginx", workload: WorkloadIdentity(
            cgroup: "/system.slice/docker-\(dockerID).scope",
            container: ContainerRef(runtime: .docker, id: dockerID, name: hostile)))
        r.client = ProcessRef(pid: 7, comm: "curl", workload: WorkloadIdentity(
            cgroup: "/kubepods/pod\(podUID)/\(dockerID)",
            container: ContainerRef(runtime: nil, id: dockerID),
            pod: PodRef(uid: podUID, qos: .besteffort, namespace: "shop", name: "api-7d9f", container: "api")))
        r.netnsName = "ns\u{7}"
        r.node = NodeIdentity(hostname: "node-1", machineID: "m", bootID: "b")
        let line = JSONLines.line(r)
        #expect(!line.contains("\u{1b}") && !line.contains("\u{202e}") && !line.contains("\u{7}"))
        let o = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let process = try #require(o["process"] as? [String: Any])
        let container = try #require(process["container"] as? [String: Any])
        #expect(container["name"] as? String == hostile)
        #expect(container["runtime"] as? String == "docker")
        #expect(process["cgroup"] as? String == "/system.slice/docker-\(dockerID).scope")
        let pod = try #require((o["client"] as? [String: Any])?["pod"] as? [String: Any])
        #expect(pod["namespace"] as? String == "shop" && pod["name"] as? String == "api-7d9f")
        #expect(pod["uid"] as? String == podUID && pod["container"] as? String == "api" && pod["qos"] as? String == "besteffort")
        #expect(o["netns_name"] as? String == "ns\u{7}")
        let node = try #require(o["node"] as? [String: Any])
        #expect(node["hostname"] as? String == "node-1" && node["machine_id"] as? String == "m" && node["boot_id"] as? String == "b")

        let text = TextFormat.line(r)
        #expect(!text.contains("\u{1b}") && !text.contains("\u{202e}") && !text.contains("\u{7}") && !text.contains("\n"))
        #expect(text.contains("client curl[7] pod shop/api-7d9f container api"))
        #expect(text.contains("process nginx[4410] container web"))
    }

    @Test("a container with systemd inside: container, then the unit it runs")
    func containerAndInnerUnit() {
        let id = CgroupIdentity.identity(path: "/lxc.payload.web/system.slice/nginx.service")
        #expect(id.words == ["container web", "unit nginx.service"])
    }

    @Test("an LXC container's fixes are LXC's, LXD's, Incus's and Proxmox's: no docker commands")
    func lxcAdvice() {
        let web = CgroupIdentity.identity(path: "/lxc.payload.web/system.slice/nginx.service")
        var f = Advice.Facts(killedBySignal: true)
        f.workload = web
        let exited = Advice.for(reason: .noListener, cause: .noListener(.listenerExited), facts: f).fix
        #expect(exited.contains("inside container web") && exited.contains("lxc-attach -n web --")
                && exited.contains("systemctl restart nginx.service"), "\(exited)")
        let starting = Advice.for(reason: .noListener, cause: .noListener(.starting), facts: f).fix
        let throttled = Advice.for(reason: .acceptQueueFull, cause: .acceptQueueFull(.listenerThrottled), facts: f).fix
        #expect(throttled.contains("incus config set web limits.cpu"), "\(throttled)")
        for fix in [exited, starting, throttled] { #expect(!fix.contains("docker"), "\(fix)") }
    }

    @Test func textShowsUnitOrContainerCompactly() {
        var r = Record(ts: 1, kind: .refusal, reason: .noListener, port: 80)
        r.process = ProcessRef(pid: 1, comm: "nginx", workload: WorkloadIdentity(cgroup: "/system.slice/nginx.service", unit: "nginx.service"))
        #expect(TextFormat.line(r).contains("process nginx[1] unit nginx.service"))
        r.process = ProcessRef(pid: 1, comm: "httpd", workload: WorkloadIdentity(container: ContainerRef(runtime: .docker, id: dockerID)))
        #expect(TextFormat.line(r).contains("process httpd[1] container 3f4e8a9b1c2d"))
        r.process = ProcessRef(pid: 1, comm: "x", workload: WorkloadIdentity(pod: PodRef(uid: podUID)))
        #expect(TextFormat.line(r).contains("process x[1] pod uid \(podUID)"))
    }

    @Test func listenerHistoryKeepsTheWorkloadAfterExit() {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0), joinWindowNs: 0)
        let unit = WorkloadIdentity(cgroup: "/system.slice/web.service", unit: "web.service")
        e.seed([ListenerInfo(netns: 1, family: .ipv4, local: Endpoint(addr: .any4, port: 8080), ipv6Only: nil,
                             socketInode: 9, pid: 50, comm: "web", workload: unit)])
        let task = TaskInfo(pid: 50, comm: "web")
        _ = e.ingest(.listenClose(ListenerChange(ts: 10, family: .ipv4, local: Endpoint(addr: .any4, port: 8080),
                                                 task: task, socketInode: 9, netns: 1)))
        _ = e.ingest(.exit(ProcessExit(ts: 11, task: task, exitCode: 9)))
        var out = e.ingest(.noSocketReset(NoSocketReset(ts: 20, family: .ipv4,
                                                        local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080),
                                                        remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 5555), netns: 1)))
        out += e.finish()
        #expect(out.count == 1)
        #expect(out.first?.cause?.rawValue == "listener_exited")
        #expect(out.first?.process?.workload?.unit == "web.service")
    }

    @Test("nothing on the port, but the container owning the namespace listens on another: wrong_port names it")
    func wrongPortInAContainer() {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0), joinWindowNs: 0)
        let web = WorkloadIdentity(cgroup: "/docker/\(dockerID)", container: ContainerRef(runtime: .docker, id: dockerID, name: "web"))
        e.seed([ListenerInfo(netns: 5, family: .ipv4, local: Endpoint(addr: .any4, port: 81), ipv6Only: nil,
                             socketInode: 3, pid: 70, comm: "httpd", workload: web),
                // Not a container: the host's listener in namespace 1 says nothing about namespace 5.
                ListenerInfo(netns: 1, family: .ipv4, local: Endpoint(addr: .any4, port: 22), ipv6Only: nil,
                             socketInode: 4, pid: 1, comm: "sshd")])
        let lo = IPAddress(v4: 127, 0, 0, 1)
        func refuse(netns: UInt32, port: UInt16, ts: UInt64) -> Record? {
            var out = e.ingest(.noSocketReset(NoSocketReset(ts: ts, family: .ipv4, local: Endpoint(addr: lo, port: port),
                                                            remote: Endpoint(addr: lo, port: 5000), netns: netns)))
            out += e.finish()
            return out.first
        }
        let r = refuse(netns: 5, port: 80, ts: 10)
        #expect(r?.cause?.rawValue == NoListenerCause.wrongPort.rawValue)
        #expect(r?.process?.pid == 70)
        #expect(r?.process?.workload?.container?.name == "web")
        #expect(r?.hint?.contains("httpd (pid 70, container web) listens on 81 only") == true)
        // The host's namespace (no container listener) stays never_listened.
        #expect(refuse(netns: 1, port: 80, ts: 20)?.cause?.rawValue == NoListenerCause.neverListened.rawValue)
        // Once the container's listener closes, its namespace has nothing listening: listener_closed on 81, never_listened on 80.
        _ = e.ingest(.listenClose(ListenerChange(ts: 30, family: .ipv4, local: Endpoint(addr: .any4, port: 81),
                                                 task: TaskInfo(pid: 70, comm: "httpd"), socketInode: 3, netns: 5)))
        #expect(refuse(netns: 5, port: 80, ts: 40)?.cause?.rawValue == NoListenerCause.neverListened.rawValue)
    }

    /// A supervisor that has restarted the unit's program as pid 81.
    struct RestartedResolver: ProcessResolver {
        func exe(pid: UInt32) -> String? { nil }
        func successor(of workload: WorkloadIdentity, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef? {
            workload.unit == "web.service" && pid == 50 && comm == "web" && startedAfter == 11
                ? ProcessRef(pid: 81, comm: "web", workload: workload) : nil
        }
    }

    @Test("the listener exited and its unit runs the program again, not listening yet: restarting names the new process")
    func restartingService() {
        let r = Self.restartingRecords().first
        #expect(r?.cause?.rawValue == NoListenerCause.restarting.rawValue)
        #expect(r?.process?.pid == 81)
        #expect(r?.json["evidence"]?["previous"]?["pid"]?.intValue == 50)
        #expect(r?.json["evidence"]?["signal_name"]?.stringValue == "SIGKILL")
        #expect(r?.hint?.contains("web (pid 81, unit web.service) has started in the same unit web.service since web (pid 50, unit web.service) exited") == true)
    }

    /// The records of a refusal to a unit restarted but not listening yet (the schema suite uses them too).
    @Test("the 'restarted' process is the refused client itself (same program, same unit, started after the exit): listener_exited, not restarting")
    func restartedProcessIsTheClient() {
        var e = Self.exitedWebService(joinWindowNs: 1_000_000)
        let lo = IPAddress(v4: 127, 0, 0, 1)
        let (server, client) = (Endpoint(addr: lo, port: 8080), Endpoint(addr: lo, port: 5555))
        #expect(e.ingest(.noSocketReset(NoSocketReset(ts: 20, family: .ipv4, local: server, remote: client, netns: 1))).isEmpty)
        let r = e.ingest(connectFailure(at: 21, from: client, to: server, pid: 81, comm: "web")).first
        #expect(r?.cause == .noListener(.listenerExited), "\(String(describing: r?.json))")
        #expect(r?.process?.pid == 50 && r?.client?.pid == 81)
        #expect(r?.json["evidence"]?["previous"] == nil)
        #expect(r?.hint?.hasPrefix("web (pid 50, unit web.service) was killed by SIGKILL") == true, "\(r?.hint ?? "")")
    }

    /// web.service's listener on 8080 (pid 50) closed and killed; the resolver has pid 81 as its successor.
    static func exitedWebService(joinWindowNs: UInt64) -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0), joinWindowNs: joinWindowNs, resolver: RestartedResolver())
        let unit = WorkloadIdentity(cgroup: "/system.slice/web.service", unit: "web.service")
        e.seed([ListenerInfo(netns: 1, family: .ipv4, local: Endpoint(addr: .any4, port: 8080), ipv6Only: nil,
                             socketInode: 9, pid: 50, comm: "web", workload: unit)])
        let task = TaskInfo(pid: 50, comm: "web")
        _ = e.ingest(.listenClose(ListenerChange(ts: 10, family: .ipv4, local: Endpoint(addr: .any4, port: 8080),
                                                 task: task, socketInode: 9, netns: 1)))
        _ = e.ingest(.exit(ProcessExit(ts: 11, task: task, exitCode: 9)))
        return e
    }

    static func restartingRecords() -> [Record] {
        var e = exitedWebService(joinWindowNs: 0)
        let lo = IPAddress(v4: 127, 0, 0, 1)
        var out = e.ingest(.noSocketReset(NoSocketReset(ts: 20, family: .ipv4, local: Endpoint(addr: lo, port: 8080),
                                                        remote: Endpoint(addr: lo, port: 5555), netns: 1)))
        out += e.finish()
        return out
    }

    /// A supervisor (pid 40) that started web again as pid 91, where no cgroup groups them.
    struct RelaunchedResolver: ProcessResolver {
        static let launch = ProcessLaunch(parent: 40, parentComm: "supervisord", commandLineHash: 7)
        func exe(pid: UInt32) -> String? { pid == 40 ? "/usr/bin/python3" : nil }
        func launch(pid: UInt32) -> ProcessLaunch? { pid == 60 ? Self.launch : nil }
        func relaunch(of launch: ProcessLaunch, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef? {
            launch == Self.launch && pid == 60 && comm == "web" && startedAfter == 11 ? ProcessRef(pid: 91, comm: "web") : nil
        }
    }

    /// web (pid 60, no unit) listened on 8080 under supervisord, then was killed; refused after.
    static func relaunchedRecords() -> [Record] {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0), joinWindowNs: 0, resolver: RelaunchedResolver())
        let task = TaskInfo(pid: 60, comm: "web")
        let at = Endpoint(addr: .any4, port: 8080), lo = IPAddress(v4: 127, 0, 0, 1)
        _ = e.ingest(.listen(ListenerChange(ts: 5, family: .ipv4, local: at, task: task, socketInode: 9, netns: 1)))
        _ = e.ingest(.listenClose(ListenerChange(ts: 10, family: .ipv4, local: at, task: task, socketInode: 9, netns: 1)))
        _ = e.ingest(.exit(ProcessExit(ts: 11, task: task, exitCode: 9)))
        var out = e.ingest(.noSocketReset(NoSocketReset(ts: 20, family: .ipv4, local: Endpoint(addr: lo, port: 8080),
                                                        remote: Endpoint(addr: lo, port: 5555), netns: 1)))
        out += e.finish()
        return out
    }

    @Test("no unit, container or pod (no systemd): the same parent started the same command line again, not listening yet: restarting names it and the parent")
    func restartedByItsParent() throws {
        let r = try #require(Self.relaunchedRecords().first)
        #expect(r.cause == .noListener(.restarting), "\(r.json)")
        #expect(r.process?.pid == 91)
        #expect(r.json["evidence"]?["previous"]?["pid"]?.intValue == 60)
        #expect(r.json["evidence"]?["restarted_by"]?["pid"]?.intValue == 40)
        #expect(r.json["evidence"]?["restarted_by"]?["comm"]?.stringValue == "supervisord")
        #expect(r.hint?.hasPrefix("web (pid 91) has been started again by supervisord (pid 40) since web (pid 60) exited, but does not listen on port 8080 yet")
                == true, "\(r.hint ?? "")")
        // The unit-scoped restart does not name a parent.
        #expect(Self.restartingRecords().first?.json["evidence"]?["restarted_by"] == nil)
    }

    @Test("a launch's command-line hash: equal bytes equal, another argument another")
    func launchHash() {
        let a = ProcessLaunch.hash(commandLine: Array("python3\0-m\0http.server\08080\0".utf8))
        #expect(a == ProcessLaunch.hash(commandLine: Array("python3\0-m\0http.server\08080\0".utf8)))
        #expect(a != ProcessLaunch.hash(commandLine: Array("python3\0-m\0http.server\08081\0".utf8)))
    }

    @Test func procStatStartTime() {
        let stat = "4410 (ngi) nx) S 1 4410 4410 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000000 200 18446744073709551615"
        #expect(ProcStat.startTicks(stat) == 123456)
        #expect(ProcStat.startTicks("garbage") == nil)
        #expect(ProcStat.startTicks("1 (x) S 1 2") == nil)
    }

    @Test func dockerProxyCommandLine() {
        let p = PublishedPort(dockerProxyCommandLine: ["/usr/sbin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1",
                                                       "-host-port", "18300", "-container-ip", "172.17.0.2", "-container-port", "80"])
        #expect(p == PublishedPort(published: "127.0.0.1:18300", target: "172.17.0.2:80"))
        let v6 = PublishedPort(dockerProxyCommandLine: ["docker-proxy", "-proto", "tcp", "-host-ip", "::1", "-host-port", "1",
                                                        "-container-ip", "fd00::2", "-container-port", "2"])
        #expect(v6?.published == "[::1]:1" && v6?.target == "[fd00::2]:2")
        #expect(PublishedPort(dockerProxyCommandLine: ["/usr/bin/python3", "-host-port", "1"]) == nil)
        #expect(PublishedPort(dockerProxyCommandLine: ["docker-proxy", "-host-port"]) == nil)
        var r = Record(ts: 1, kind: .refusal, reason: .noListener, hint: "nothing listens")
        r.netnsName = "container web"
        r.addProxy(p!, tool: "docker-proxy")
        #expect(r.json["evidence"]?["proxy"]?["published"]?.stringValue == "127.0.0.1:18300")
        #expect(r.hint == "nothing listens (the client is docker-proxy, forwarding the published port 127.0.0.1:18300 to 172.17.0.2:80 in container web)")
    }

    @Test("a running container's config: each published TCP port to each of its addresses; nothing when stopped")
    func dockerConfigPublishedPorts() {
        func config(running: Bool) -> [UInt8] {
            Array("""
                {"ID":"abc","Name":"/web","State":{"Running":\(running),"Pid":42},
                 "NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}],
                                            "443/tcp":null,"53/udp":[{"HostIp":"0.0.0.0","HostPort":"5353"}],
                                            "81/tcp":[{"HostIp":"127.0.0.1","HostPort":"9090"}]},
                  "Networks":{"bridge":{"IPAddress":"172.17.0.2","GlobalIPv6Address":"fd00::2"},
                              "other":{"IPAddress":"","GlobalIPv6Address":""}}}}
                """.utf8)
        }
        let ports = PublishedPort.docker(configJSON: config(running: true))
        #expect(Set(ports) == [
            PublishedPort(published: "0.0.0.0:8080", target: "172.17.0.2:80"),
            PublishedPort(published: "0.0.0.0:8080", target: "[fd00::2]:80"),
            PublishedPort(published: "[::]:8080", target: "172.17.0.2:80"),
            PublishedPort(published: "[::]:8080", target: "[fd00::2]:80"),
            PublishedPort(published: "127.0.0.1:9090", target: "172.17.0.2:81"),
            PublishedPort(published: "127.0.0.1:9090", target: "[fd00::2]:81"),
        ])
        #expect(ports.first { $0.target == "172.17.0.2:81" }.map { [$0.hostPort, $0.targetPort] } == [9090, 81])
        #expect(PublishedPort.docker(configJSON: config(running: false)).isEmpty)
        #expect(PublishedPort.docker(configJSON: Array("{}".utf8)).isEmpty)
        #expect(PublishedPort.docker(configJSON: Array("not json".utf8)).isEmpty)
    }

    @Test("--port keeps a record at the container's end of a published port it names")
    func portFilterFollowsPublishedPorts() {
        var r = Record(ts: 1, kind: .refusal, reason: .noListener, port: 80, hint: "nothing listens")
        r.local = Endpoint(addr: IPAddress(v4: 172, 17, 0, 2), port: 80)
        #expect(!r.matches(ports: [8080]))
        #expect(r.matches(ports: [8080], publishedTargets: ["172.17.0.2:80"]))
        #expect(!r.matches(ports: [8080], publishedTargets: ["172.17.0.3:80"]))
        #expect(r.matches(ports: [80]))
        r.originalDestination = Endpoint(addr: IPAddress(v4: 192, 0, 2, 1), port: 8080)
        #expect(r.matches(ports: [8080]))
        #expect(Record(ts: 1, kind: .lost, hint: "x").matches(ports: [8080]))
    }

    @Test("the client's reset by docker-proxy names the refusal behind the published port")
    func proxyJoin() {
        var join = ProxyJoin()
        let lo = IPAddress(v4: 127, 0, 0, 1)
        var inner = Record(ts: 1_000, kind: .refusal, reason: .noListener, cause: .noListener(.wrongPort), port: 80,
                           netns: 7, hint: "nothing listens on port 80")
        inner.netnsName = "container web"
        inner.process = ProcessRef(pid: 5, comm: "httpd")
        inner.client = ProcessRef(pid: 9, comm: "docker-proxy")
        inner.addProxy(PublishedPort(published: "127.0.0.1:18300", target: "172.17.0.2:80"), tool: "docker-proxy")
        join.annotate(&inner)
        var reset = Record(ts: 2_000, kind: .connectFailure, reason: .resetByPeer, cause: .resetByPeer(.resetAfterSetup), port: 18300,
                           local: Endpoint(addr: lo, port: 40000), remote: Endpoint(addr: lo, port: 18300), hint: "reset")
        join.annotate(&reset)
        let b = reset.json["evidence"]?["behind_proxy"]
        #expect(b?["published"]?.stringValue == "127.0.0.1:18300")
        #expect(b?["cause"]?.stringValue == "wrong_port")
        #expect(b?["netns_name"]?.stringValue == "container web")
        #expect(b?["process"]?["pid"]?.intValue == 5)
        #expect(reset.hint?.hasPrefix("docker-proxy accepted the connection on the published port 127.0.0.1:18300 and reset it, because its own connection to 172.17.0.2:80 (container web) was refused (no_listener/wrong_port): nothing listens on port 80") == true)
        // Another port, or too late: left alone.
        var other = Record(ts: 2_000, kind: .connectFailure, reason: .resetByPeer, port: 18301,
                           local: Endpoint(addr: lo, port: 40001), remote: Endpoint(addr: lo, port: 18301), hint: "reset")
        join.annotate(&other)
        #expect(other.hint == "reset")
        var late = Record(ts: 5_000_000_000, kind: .connectFailure, reason: .resetByPeer, port: 18300,
                          local: Endpoint(addr: lo, port: 40002), remote: Endpoint(addr: lo, port: 18300), hint: "reset")
        join.annotate(&late)
        #expect(late.hint == "reset")
        #expect(PublishedPort(published: "0.0.0.0:18300", target: "x").isPublished(at: "10.0.0.1:18300"))
        #expect(!PublishedPort(published: "127.0.0.1:18300", target: "x").isPublished(at: "127.0.0.2:18300"))
    }
}

/// A process whose cgroup names no container (a rootless container where
/// cgroups are not delegated): the container monitor above it does.
@Suite("container monitors' command lines")
struct MonitoredContainerTests {
    static let id = String(repeating: "ab", count: 32)

    @Test("containerd's shim (Docker's moby namespace, others containerd's) and conmon (Podman, with its name); anything else nil")
    func monitors() {
        let shim = WorkloadNames.monitoredContainer(commandLine: ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", Self.id,
                                                                 "-address", "/run/user/1000/docker/containerd/containerd.sock"])
        #expect(shim == ContainerRef(runtime: .docker, id: Self.id))
        let nerdctl = WorkloadNames.monitoredContainer(commandLine: ["containerd-shim-runc-v2", "-namespace", "default", "-id", Self.id])
        #expect(nerdctl?.runtime == .containerd)
        let conmon = WorkloadNames.monitoredContainer(commandLine: ["/usr/bin/conmon", "--api-version", "1", "-c", Self.id, "-u", Self.id,
                                                                   "-n", "web", "-r", "/usr/bin/crun"])
        #expect(conmon == ContainerRef(runtime: .podman, id: Self.id, name: "web"))
        #expect(WorkloadNames.monitoredContainer(commandLine: ["containerd-shim-runc-v2", "-namespace", "moby", "-id", "web"]) == nil)
        #expect(WorkloadNames.monitoredContainer(commandLine: ["/usr/sbin/nginx", "-c", Self.id]) == nil)
        #expect(WorkloadNames.monitoredContainer(commandLine: []) == nil)
    }

    @Test("/proc/<pid>/stat: the name between the first '(' and the last ')', the parent after it")
    func stat() {
        let text = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10\n"
        #expect(ProcStat.comm(text) == "a (b) c")
        #expect(ProcStat.parent(text) == 17)
        #expect(ProcStat.startTicks(text) == 12345)
    }
}
