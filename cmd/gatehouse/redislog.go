package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisLogger routes go-redis's process-wide log lines (failed dials
// during an outage) into gatehouse's log at debug level: the rate limiter
// already logs an outage once, with what it does about it.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "redis")
}

func setRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }
