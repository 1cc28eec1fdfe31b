package ratelimit

import (
	"errors"
	"io"
)

func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, errors.New("file is larger than 64 MiB")
	}
	return b, nil
}
