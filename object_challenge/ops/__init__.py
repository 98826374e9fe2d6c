"""Operations: backup and restore, the scheduler loop, production start-up checks."""

from object_challenge.ops import backup, recovery, scheduler

COMMANDS = (backup.backup_command, backup.restore_command, scheduler.scheduler_command)
# periodic tasks of the scheduler that no service package owns
SCHEDULE = ((recovery.recover_if_redis_lost, 1.0),)  # Redis lost its data: recover from MongoDB
