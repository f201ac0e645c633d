import ArgumentParser
import BackupCore
import Foundation
import Targets

/// The generic `backstop` executable: its targets are declared in config, so a new
/// deployment needs no Swift code.
public enum BackstopFrontend: Frontend {
    public typealias BackupFlags = NoFlags
    public static let commandName = "backstop"
    public static let abstract = "Back up, verify and restore the targets declared in a config file."
    public static let configHelp = """
    Config keys (--config FILE, default ./.env; the environment overrides):
      BACKUP_DIR           where backups go (relative to the config file)
      TARGETS              target names in run order, e.g. "db code"
      TARGET_<NAME>_KIND   one of the kinds below, then that kind's keys:
        sqlite:  _PATH _COMPRESSION _LEVEL
        archive: _PATHS _BASE _INCLUDE _EXCLUDE _COMPRESSION _LEVEL
                 _THREADS _ARTIFACT
        pg_dump: _DATABASE(S) _HOST _PORT _USER _PASSWORD _PASSFILE
                 _SSLMODE _BIN_DIR _FORMAT _LEVEL _THREADS _JOBS
                 _ROW_COUNTS _MIN_BYTES _SHRINK_WARN _LOCK_TIMEOUT _GLOBALS
        pg_basebackup: the connection keys, _DATABASE _WAL_ARCHIVE
                 _COMPRESSION _LEVEL _WORKERS _DATA_DIR _RESTORE_OWNER
                 _STOP_CMD _START_CMD _PRUNE_WAL _ROW_COUNTS
        rsync:   _SOURCE _LINK _EXCLUDE _DEFAULT_EXCLUDES _HARD_LINKS
                 _ACLS _XATTRS _BWLIMIT _RESTORE_OWNER _RESTORE_GROUP
                 _RESTORE_CHMOD
        minio:   _DATA_DIR _BUCKET _COMPRESSION _LEVEL _THREADS
                 _MIN_BYTES _STOP_CMD _START_CMD
      KEEP_<TIER>, KEEP_<TIER>_DAYS, KEEP_MINIMUM, RETENTION_WEEKS   by tier
      RETENTION=gfs KEEP_LAST KEEP_HOURLY KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY
        KEEP_YEARLY KEEP_WITHIN (or RETENTION_DAYS) TZ
                           grandfather-father-son retention
      SCHEDULE_<NAME>="CRON: COMMAND", BACKUP_SCHEDULE   schedules
      ALERT_WEBHOOK_URL SLACK_WEBHOOK_URL DISCORD_WEBHOOK_URL NTFY_URL
      GOTIFY_URL HEALTHCHECK_URL ALERT_EMAIL_TO SMTP_URL SENDMAIL
      ALERT_ON ALERT_COOLDOWN ALERT_AFTER_FAILURES   alerts
      MAX_AGE MIN_SIZE SHRINK_WARN (also TARGET_<NAME>_…) DISK_USAGE_WARN
      WAL_MAX_AGE DRILL_MAX_AGE   health; METRICS_FILE PUSHGATEWAY_URL
      DEPLOYMENT_NAME; durations are written 30s, 90m, 26h, 7d
    The README documents every key; Examples/ has configs to copy.
    """

    public static func deployment(config: Config) throws -> Deployment {
        let dir = try config.requirePath("BACKUP_DIR")
        return Deployment(backupDirectory: dir, targets: try TargetRegistry.buildAll(config: config),
                          retention: try RetentionPolicy.from(config: config))
    }

    public static func selection(_ flags: NoFlags) -> [String] { [] }
}
