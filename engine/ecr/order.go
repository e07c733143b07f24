package ecr

import "github.com/cutover/cutover/engine"

// Sort orders images the way the Config asks: by semantic version of their
// highest tag when Semver is set, newest first otherwise (engine.SortImages).
func (r *Registry) Sort(imgs []engine.Image) { engine.SortImages(imgs, r.cfg.Semver) }
