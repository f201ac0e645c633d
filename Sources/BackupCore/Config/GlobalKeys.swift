/// Every global config key (not `TARGET_<NAME>_…`) the engine reads, declared once, in the
/// sections `--help` and the README use. A feature that adds a key adds one line here; the
/// README test, `--help`, `check --keys` and the "did you mean" of `check` read this list.
public enum GlobalKeys {
    /// One titled group of keys.
    public struct Section: Sendable {
        /// The section's name, e.g. `retention`.
        public let title: String
        /// Its keys.
        public let keys: [ConfigKey]

        /// Declares a section.
        public init(title: String, keys: [ConfigKey]) {
            self.title = title
            self.keys = keys
        }
    }

    /// Where backups go and which targets run.
    public static let deployment = Section(title: "deployment", keys: [
        ConfigKey("BACKUP_DIR", .path, help: "where backups go (relative to the config file)"),
        ConfigKey("TARGETS", .list, help: "target names in run order, e.g. \"db code\""),
        ConfigKey("DEPLOYMENT_NAME", .string, default: "the executable's name", help: "names the deployment in alerts and metrics"),
    ])

    /// What `prune` keeps (README "Retention").
    public static let retention = Section(title: "retention", keys: [
        ConfigKey("RETENTION", .choice(["tiers", "gfs"]), default: "tiers, or gfs when a gfs key is set", help: "the retention scheme"),
        ConfigKey("KEEP_TIERS", .list, default: "daily weekly monthly", help: "more tiers"),
        ConfigKey("KEEP_<TIER>", .int, help: "sets kept in a tier (also KEEP_<TIER>_SETS)"),
        ConfigKey("KEEP_<TIER>_SETS", .int, help: "sets kept in a tier"),
        ConfigKey("KEEP_<TIER>_DAYS", .int, help: "days a tier's sets are kept"),
        ConfigKey("RETENTION_WEEKS", .int, help: "weeks the weekly tier is kept (CEP's key)"),
        ConfigKey("KEEP_MINIMUM", .int, default: "1", help: "good sets never pruned, whatever the rules"),
        ConfigKey("KEEP_LAST", .int, help: "gfs: the newest N sets"),
        ConfigKey("KEEP_HOURLY", .int, help: "gfs: the newest set of each of the last N hours"),
        ConfigKey("KEEP_DAILY", .int, help: "gfs: ... of each of the last N days (tiers: daily sets kept)"),
        ConfigKey("KEEP_WEEKLY", .int, help: "gfs: ... of each of the last N weeks (tiers: weekly sets kept)"),
        ConfigKey("KEEP_MONTHLY", .int, help: "gfs: ... of each of the last N months (tiers: monthly sets kept)"),
        ConfigKey("KEEP_YEARLY", .int, help: "gfs: ... of each of the last N years"),
        ConfigKey("KEEP_WITHIN", .duration, help: "gfs: every set younger than this"),
        ConfigKey("RETENTION_DAYS", .int, help: "gfs: every set younger than this many days (schedgen's key)"),
        ConfigKey("TZ", .string, default: "the system's", help: "the time zone days, weeks and months are counted in"),
    ])

    /// When `schedule install` and `daemon` run what.
    public static let schedules = Section(title: "schedules", keys: [
        ConfigKey("SCHEDULE_<NAME>", .string, help: "\"CRON: COMMAND\", \"CRON\" or off"),
        ConfigKey("SCHEDULE_<NAME>_COMMAND", .string, help: "the command of SCHEDULE_<NAME>"),
        ConfigKey("BACKUP_SCHEDULE", .string, help: "the cron time of the default daily backup (schedgen's key)"),
    ])

    /// Where alerts go and when.
    public static let alerts = Section(title: "alerts", keys: [
        ConfigKey("ALERT_WEBHOOK_URL", .url, help: "POST a JSON alert here (also BACKUP_ALERT_WEBHOOK_URL)"),
        ConfigKey("BACKUP_ALERT_WEBHOOK_URL", .url, help: "the same as ALERT_WEBHOOK_URL"),
        ConfigKey("SLACK_WEBHOOK_URL", .url, help: "a Slack incoming webhook (also SLACK_WEBHOOK)"),
        ConfigKey("SLACK_WEBHOOK", .url, help: "the same as SLACK_WEBHOOK_URL"),
        ConfigKey("DISCORD_WEBHOOK_URL", .url, help: "a Discord webhook (also DISCORD_WEBHOOK)"),
        ConfigKey("DISCORD_WEBHOOK", .url, help: "the same as DISCORD_WEBHOOK_URL"),
        ConfigKey("NTFY_URL", .url, help: "an ntfy topic URL"),
        ConfigKey("NTFY_TOKEN", .secret, help: "the ntfy access token"),
        ConfigKey("GOTIFY_URL", .url, help: "a Gotify server"),
        ConfigKey("GOTIFY_TOKEN", .secret, help: "the Gotify application token (required with GOTIFY_URL)"),
        ConfigKey("HEALTHCHECK_URL", .url, help: "pinged on start, success and failure (healthchecks.io style)"),
        ConfigKey("ALERT_EMAIL_TO", .list, help: "mail alerts to these addresses (also ALERT_EMAIL, BACKUP_ALERT_EMAIL)"),
        ConfigKey("ALERT_EMAIL", .list, help: "the same as ALERT_EMAIL_TO"),
        ConfigKey("BACKUP_ALERT_EMAIL", .list, help: "the same as ALERT_EMAIL_TO"),
        ConfigKey("ALERT_EMAIL_FROM", .string, default: "backstop@HOST", help: "the sender of mail alerts"),
        ConfigKey("SMTP_URL", .url, default: "sendmail", help: "smtp://host:port or smtps://host:port"),
        ConfigKey("SMTP_USER", .string, help: "the SMTP login"),
        ConfigKey("SMTP_PASSWORD", .secret, help: "the SMTP password"),
        ConfigKey("SENDMAIL", .path, default: "/usr/sbin/sendmail", help: "the sendmail program, without SMTP_URL"),
        ConfigKey("ALERT_ON", .choice(["failure", "warning", "always"]), default: "failure", help: "what alerts"),
        ConfigKey("ALERT_COOLDOWN", .duration, default: "1h", help: "the same alert is not repeated sooner"),
        ConfigKey("ALERT_AFTER_FAILURES", .int, default: "1", help: "alert after this many failures in a row"),
        ConfigKey("ALERT_TIMEOUT", .duration, default: "20s", help: "per channel"),
    ])

    /// The health check's thresholds (each of the first three also per target).
    public static let health = Section(title: "health", keys: [
        ConfigKey("MAX_AGE", .duration, default: "26h", help: "a newest backup older than this warns (twice as old: critical)"),
        ConfigKey("MIN_SIZE", .size, help: "the newest good backup must be at least this big"),
        ConfigKey("SHRINK_WARN", .number, default: "0.5", help: "warn when a backup shrinks by more than this fraction"),
        ConfigKey("DISK_USAGE_WARN", .number, default: "85", help: "percent of the backup disk in use that warns"),
        ConfigKey("DISK_USAGE_CRITICAL", .number, default: "95", help: "... that is critical"),
        ConfigKey("WAL_MAX_AGE", .duration, default: "6h", help: "the newest archived WAL segment older than this warns"),
        ConfigKey("DRILL_MAX_AGE", .duration, default: "8d", help: "the last restore drill older than this warns"),
    ])

    /// Where metrics go.
    public static let metrics = Section(title: "metrics", keys: [
        ConfigKey("METRICS_FILE", .path, help: "node_exporter textfile-collector file (ends in .prom)"),
        ConfigKey("PUSHGATEWAY_URL", .url, help: "a Prometheus Pushgateway"),
    ])

    /// Encryption at rest (README "Encryption").
    public static let encryption = Section(title: "encryption", keys: [
        ConfigKey("ENCRYPT_TO", .list, help: "age recipients (age1...) every artifact is encrypted to"),
        ConfigKey("ENCRYPT_TO_FILE", .path, help: "a file of age recipients, one a line"),
        ConfigKey("DECRYPT_IDENTITY_FILE", .path, help: "the age identity file verify and restore decrypt with"),
    ])

    /// Off-site copies in an S3-compatible bucket (README "Off-site copies").
    public static let offsite = Section(title: "off-site copies", keys: [
        ConfigKey("OFFSITE", .url, help: "s3://BUCKET[/PREFIX] the sets are copied to"),
        ConfigKey("OFFSITE_URL", .url, help: "the same as OFFSITE"),
        ConfigKey("OFFSITE_BUCKET", .string, help: "the bucket, when OFFSITE is not set"),
        ConfigKey("OFFSITE_PREFIX", .string, help: "a folder in the bucket, with OFFSITE_BUCKET"),
        ConfigKey("OFFSITE_ENDPOINT", .url, default: "AWS for OFFSITE_REGION", help: "http(s)://HOST[:PORT] of the S3 API"),
        ConfigKey("OFFSITE_REGION", .string, default: "AWS_REGION, else us-east-1", help: "the signing region"),
        ConfigKey("OFFSITE_ADDRESSING", .choice(["path", "virtual"]), default: "path", help: "path-style or virtual-host addressing"),
        ConfigKey("OFFSITE_NAME", .string, default: "DEPLOYMENT_NAME", help: "the deployment's folder in the bucket"),
        ConfigKey("OFFSITE_ACCESS_KEY_ID", .string, help: "the access key (else AWS_ACCESS_KEY_ID, else the shared credentials file)"),
        ConfigKey("OFFSITE_SECRET_ACCESS_KEY", .secret, help: "the secret key"),
        ConfigKey("OFFSITE_SESSION_TOKEN", .secret, help: "a session token"),
        ConfigKey("OFFSITE_PROFILE", .string, default: "AWS_PROFILE, else default", help: "the shared credentials file's profile"),
        ConfigKey("OFFSITE_CA_FILE", .path, help: "a CA bundle for a private endpoint (TLS is always verified)"),
        ConfigKey("OFFSITE_PART_SIZE_MB", .int, default: "64", help: "multipart part size and threshold, 5 to 5120"),
        ConfigKey("OFFSITE_RETRIES", .int, default: "5", help: "attempts per request on 5xx, 429 and connection errors"),
        ConfigKey("OFFSITE_TIMEOUT", .int, default: "60", help: "seconds a transfer may move nothing before it is retried"),
        ConfigKey("OFFSITE_BWLIMIT", .int, help: "upload and download limit in KiB/s"),
        ConfigKey("OFFSITE_AUTO", .bool, default: "true", help: "push after each successful backup"),
        ConfigKey("OFFSITE_GC_GRACE", .duration, default: "1d", help: "offsite prune: unreferenced objects younger than this stay"),
        ConfigKey("OFFSITE_MAX_AGE", .duration, default: "twice MAX_AGE", help: "health: the newest off-site copy older than this warns"),
        ConfigKey("OFFSITE_RAW_SLASH_IN_QUERY", .bool, default: "false", help: "send / bare in query strings (moto needs it)"),
    ])

    /// Every section, in `--help` order. A new section is one more entry here.
    public static let sections: [Section] = [deployment, retention, schedules, alerts, health, metrics, encryption, offsite]

    /// Every global key.
    public static var all: [ConfigKey] { sections.flatMap(\.keys) }

    /// The declaration of `key` (a family's pattern matches its members), or nil.
    public static func declaration(of key: String, among keys: [ConfigKey] = all) -> ConfigKey? {
        keys.first { $0.matches(key) }
    }
}
