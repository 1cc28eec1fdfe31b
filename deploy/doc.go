// Package deploy holds no Go code of its own: it is where the deployment
// files live, and its tests keep them honest.
//
// Typical use, from the repository root:
//
//	docker build -t gatehouse .
//	docker-compose -f deploy/docker-compose.yml up --build
//	docker-compose -f deploy/docker-compose.upstreams.yml up --build
//	install -m 0644 deploy/gatehouse.service /etc/systemd/system/
//
// Files:
//
//	gatehouse.docker.yaml       the image's default config (examples/hello)
//	gatehouse.django.yaml       docker-compose.yml: Django through app.wsgi, Redis limits
//	gatehouse.upstreams.yaml    docker-compose.upstreams.yml: the front, app.upstreams
//	gatehouse.app.yaml          docker-compose.upstreams.yml: the app service
//	gatehouse.service           systemd unit with sandboxing
//
// No Docker engine runs where the tests run, so they check what can be
// checked without one: `docker-compose config` accepts each compose file, the
// Dockerfile has the properties the image promises (multi-stage, non-root,
// HEALTHCHECK on the admin port the configs use, EXPOSE), every config the
// image or a compose file names passes `gatehouse validate` with the
// environment the compose file sets, `systemd-analyze verify` accepts the
// unit, and every complete YAML example in docs/ validates.
package deploy
