package haproxy

// ServerWeights exposes the weight mapping to the tests.
var ServerWeights = serverWeights
