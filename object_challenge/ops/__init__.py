"""Operations: backup and restore, the scheduler loop, production start-up checks."""

from object_challenge.ops import backup, scheduler

COMMANDS = (backup.backup_command, backup.restore_command, scheduler.scheduler_command)
