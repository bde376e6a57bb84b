import SynsightBase
import ArgumentParser
import SynsightKernel
import SynsightPipeline
import SynsightMetrics

/// `--metrics-address` and its bounds, shared by `trace` and `record`.
struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics at http://ADDRESS/metrics: PORT (loopback only), HOST:PORT, or [IPV6]:PORT "
            + "(e.g. 9464, 0.0.0.0:9464, [::1]:9464). Off by default.",
        valueName: "[host:]port"))
    var metricsAddress: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Distinct ports that get their own `port` label in the refusal counters; later ones are counted as port=\"other\".",
        valueName: "n"))
    var metricsMaxPorts: Int = 100

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Distinct workloads (unit, container, pod) that get their own `workload` label in the refusal counters; "
            + "later ones are counted as workload=\"other\".",
        valueName: "n"))
    var metricsMaxWorkloads: Int = 100

    @Option(parsing: .unconditional, help: ArgumentHelp("Listener series (namespace, port, address) exported as queue gauges, lowest ports first.",
                               valueName: "n"))
    var metricsMaxListeners: Int = 100

    func validate() throws {
        if let metricsAddress {
            do {
                _ = try MetricsAddress.parse(metricsAddress)
            } catch {
                throw ValidationError("--metrics-address \(error.description)")
            }
        }
        guard (1...10_000).contains(metricsMaxPorts) else {
            throw ValidationError("--metrics-max-ports must be between 1 and 10000, got \(metricsMaxPorts)")
        }
        guard (0...10_000).contains(metricsMaxWorkloads) else {
            throw ValidationError("--metrics-max-workloads must be between 0 and 10000, got \(metricsMaxWorkloads)")
        }
        guard (0...10_000).contains(metricsMaxListeners) else {
            throw ValidationError("--metrics-max-listeners must be between 0 and 10000, got \(metricsMaxListeners)")
        }
    }

    /// A running metrics endpoint: the HTTP thread and the counters the tracing loop updates.
    final class Running {
        let server: MetricsHTTPServer
        let counters: EventCounters
        let cost: SelfCostMetrics

        init(server: MetricsHTTPServer, counters: EventCounters, cost: SelfCostMetrics) {
            self.server = server
            self.counters = counters
            self.cost = cost
        }

        func stop() { server.stop() }
    }

    /// Binds the address (errors end the command before tracing starts) and
    /// starts serving; nil when --metrics-address is not given.
    func start(command: String, ports: [UInt16]) throws -> Running? {
        guard let text = metricsAddress, let addr = try? MetricsAddress.parse(text) else { return nil }
        var settings = MetricsExporter.Settings()
        settings.maxPorts = metricsMaxPorts
        settings.maxWorkloads = metricsMaxWorkloads
        settings.maxListeners = metricsMaxListeners
        settings.ports = Set(ports)
        settings.version = SynsightVersion.string
        settings.command = command
        let owners = ListenerOwners()
        let exporter = MetricsExporter(settings: settings) {
            var s = ListenerQueues.sample()
            owners.annotate(&s.listeners)
            return (s.listeners, s.unreadable)
        }
        let server: MetricsHTTPServer
        do {
            server = try MetricsHTTPServer.bind(addr)
        } catch {
            throw fail(error.description)
        }
        server.start { exporter.render() }
        Output.stderr("synsight: serving Prometheus metrics at http://\(server.address)/metrics\n")
        return Running(server: server, counters: exporter.makeEventCounters(recording: command == "record"),
                       cost: exporter.makeSelfCostMetrics())
    }
}
