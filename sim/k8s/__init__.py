"""The SIMULATED Kubernetes API server twin (and Machine Config Server); see `sim.k8s.server`."""
