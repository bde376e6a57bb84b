import ArgumentParser
import Logging
import SynsightKernel

/// Hidden switches for tests and diagnosis, shared by `trace`, `record`,
/// `explain` and `doctor`: hooks forced instead of the probed ones, the
/// log level of synsight's own diagnostics, kubelet's pod log root.
struct DiagnosticOptions: ParsableArguments {
    @Option(name: .customLong("force-hook"), help: ArgumentHelp(
        "Use this hook for an area instead of the probed one (repeatable): "
            + HookChoices.forceable.map { "\($0.area)=\($0.hooks.joined(separator: "|"))" }.joined(separator: ", "),
        valueName: "area=hook", visibility: .hidden))
    var forceHook: [String] = []

    @Option(help: ArgumentHelp("Diagnostics on stderr at this level and above: trace, debug, info, notice, warning, error, critical.",
                               valueName: "level", visibility: .hidden))
    var logLevel: String = "warning"

    @Option(help: ArgumentHelp("kubelet's pod log root (default /var/log/pods).", valueName: "dir", visibility: .hidden))
    var podLogDir: String?

    func validate() throws {
        var choices = HookChoices()
        for spec in forceHook where choices.force(spec) == nil {
            throw ValidationError("--force-hook takes area=hook, one of "
                + HookChoices.forceable.map { "\($0.area)=\($0.hooks.joined(separator: "|"))" }.joined(separator: ", ")
                + "; got '\(spec)'")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of "
                + Logger.Level.allCases.map(\.rawValue).joined(separator: ", ") + "; got '\(logLevel)'")
        }
    }

    /// The forced hooks, with `resetHook` (the public --reset-hook, validated) on top.
    func hookChoices(resetHook: String? = nil) -> HookChoices {
        var choices = HookChoices()
        for spec in forceHook { _ = choices.force(spec) }
        if let reset = resetHook.flatMap(HookChoices.resetHook(named:)) { choices.reset = reset }
        return choices
    }

    var hookChoices: HookChoices { hookChoices() }

    /// Starts swift-log at the chosen level (once, before anything logs).
    func apply() {
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
