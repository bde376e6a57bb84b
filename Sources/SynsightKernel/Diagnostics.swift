import Logging

/// synsight's own diagnostics (rule lookups that failed, helper tools that
/// failed), through swift-log: the CLI's `--log-level debug` bootstraps the
/// handler and its level before anything logs; by default only warnings
/// and above reach stderr.
public enum Diagnostics {
    public static let log = Logger(label: "synsight")
}
