"""Control and planning tasks for black-box optimisers (thesis section 5.4): Rover-60, LunarLander, Swimmer, Hopper.

Each is a ``Benchmark`` on a ``BoxSpace`` whose single metric ``reward`` is maximised.

- ``rover-60``: the 60-D rover trajectory problem of Wang et al. (2018, EBO), re-implemented from its definition:
  the 60 numbers, scaled from [0, 1] to [-0.1, 1.1], are 30 2-D control points of a cubic B-spline; the cost
  is the path integral of (20 inside an obstacle or outside the unit square, plus 0.05 everywhere), plus
  10 x the L1 distance of the path's ends from the start (0.05, 0.05) and the goal (0.95, 0.95); the reward
  is 5 - cost. Deviation: the 115 square obstacles (side 0.05) are laid out by a seeded generator
  (``layout_seed``), not copied from the EBO file, so absolute rewards differ from published ones.
- ``lunar``: LunarLander-v3 (gymnasium + box2d) flown by the 12-parameter heuristic controller of the TuRBO
  paper (gymnasium's own heuristic with its constants made parameters), parameters in [0, 2]^12.
- ``swimmer`` / ``hopper``: MuJoCo Swimmer-v5 (16-D) and Hopper-v5 (33-D) with a linear policy
  a = clip(W s'), W in [-1, 1]^(act x obs). ``obs_norm`` chooses s' (brief A13): ``"none"`` (s' = s, the
  default, as the reference code flies Swimmer), ``"fixed"`` (s' = (s - mu) / sigma with statistics given as
  ``obs_mean`` / ``obs_std``, or estimated once from seeded random policies: the reference code's fixed
  Hopper statistics came from a pretrained ARS policy, which is not available offline) or ``"running"``
  (ARS V2: statistics of every state seen in earlier evaluations; they are frozen during an evaluation so its
  episodes fly one policy, which makes the task non-stationary and its statistics per process).

Every evaluation averages ``episodes`` episodes (3, as the LA-MCTS reference code) with fixed environment
seeds 0, 1, ..., so a point always gets the same reward.
"""

from __future__ import annotations

import numpy as np

from nasagent.benchmarks.base import Benchmark, Metric
from nasagent.core import Budget, NasagentError, Result
from nasagent.spaces.box import BoxSpace

CONTROL_TASKS = ("rover-60", "lunar", "swimmer", "hopper")


class _BoxTask(Benchmark):
    """A box benchmark with one maximised metric, ``reward``; subclasses define ``reward(x)``."""

    def __init__(self, name: str, lower, upper, notes: str):
        space = BoxSpace(lower, upper, name=f"box-{np.size(lower)}")
        super().__init__(name=name, space=space, metrics={"reward": Metric("reward", "max", "reward (higher is better)")},
                         default_metric="reward", notes=notes)
        self.dim = space.dim

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise NasagentError(f"{self.name} takes {self.dim} numbers, got shape {x.shape}")
        return x

    def __call__(self, arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        return Result(metrics={"reward": float(self.reward(self._check(arch)))}, cost=1.0)

    def reward(self, x: np.ndarray) -> float:
        raise NotImplementedError


# -- Rover ---------------------------------------------------------------------------------------------------------
class Rover(_BoxTask):
    start, goal = np.array([0.05, 0.05]), np.array([0.95, 0.95])
    obstacle_cost, step_cost, miss_weight, offset = 20.0, 0.05, 10.0, 5.0

    def __init__(self, n_points: int = 30, layout_seed: int = 0, n_obstacles: int = 115, n_samples: int = 1000):
        super().__init__(f"rover-{2 * n_points}", np.zeros(2 * n_points), np.ones(2 * n_points),
                         f"rover trajectory, {n_points} B-spline points, obstacle layout seed {layout_seed}")
        centres = np.random.default_rng([layout_seed, 60]).uniform(0.0, 1.0, size=(n_obstacles, 2))
        self.obs_lo, self.obs_hi = centres - 0.025, centres + 0.025
        self.jitter = np.random.default_rng([layout_seed, 61]).normal(0.0, 1e-4, size=2 * n_points)
        self.n_samples = n_samples

    def path(self, x: np.ndarray) -> np.ndarray:
        """``n_samples`` points along the B-spline through the 30 control points (in state coordinates)."""
        from scipy.interpolate import splev, splprep

        pts = (-0.1 + 1.2 * x).reshape(-1, 2).T
        try:
            tck, _ = splprep(pts, k=3)  # scipy's default smoothing, as the EBO definition
        except ValueError:  # coincident control points (e.g. the box centre): EBO's 1e-4 jitter, here fixed
            tck, _ = splprep(pts + self.jitter.reshape(-1, 2).T, k=3)
        return np.column_stack(splev(np.linspace(0.0, 1.0, self.n_samples), tck))

    def state_cost(self, P: np.ndarray) -> np.ndarray:
        inside = ((P[:, None, :] >= self.obs_lo[None]) & (P[:, None, :] < self.obs_hi[None])).all(axis=2).any(axis=1)
        outside_map = ((P < 0.0) | (P >= 1.0)).any(axis=1)
        return self.obstacle_cost * (inside | outside_map) + self.step_cost

    def reward(self, x: np.ndarray) -> float:
        P = self.path(x)
        c = self.state_cost(P)
        cost = float(np.sum(np.linalg.norm(np.diff(P, axis=0), axis=1) * 0.5 * (c[1:] + c[:-1])))
        cost += self.miss_weight * (np.abs(P[0] - self.start).sum() + np.abs(P[-1] - self.goal).sum())
        return self.offset - cost


# -- gymnasium tasks -------------------------------------------------------------------------------------------------
def _make_env(env_id: str):
    try:
        import gymnasium as gym

        return gym.make(env_id)
    except ImportError as e:
        raise NasagentError(
            f"benchmark needs gymnasium with box2d / mujoco ({e}); install: pip install 'nasagent[control]'"
        ) from None
    except Exception as e:  # gymnasium raises DependencyNotInstalled etc. for a missing simulator
        raise NasagentError(f"cannot create {env_id}: {e}; install: pip install 'nasagent[control]'") from None


class _GymTask(_BoxTask):
    env_id = ""

    def __init__(self, name, lower, upper, episodes: int, max_steps: int, notes: str):
        if int(episodes) < 1 or int(max_steps) < 1:
            raise NasagentError(f"{name} needs episodes >= 1 and max_steps >= 1, got {episodes} and {max_steps}")
        super().__init__(name, lower, upper, notes)
        self.episodes, self.max_steps = int(episodes), int(max_steps)
        self._env = None

    @property
    def env(self):
        if self._env is None:
            self._env = _make_env(self.env_id)
        return self._env

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_env"] = None
        return state

    def act(self, x: np.ndarray, obs: np.ndarray):
        raise NotImplementedError

    def reward(self, x: np.ndarray) -> float:
        total = 0.0
        for ep in range(self.episodes):
            obs, _ = self.env.reset(seed=ep)
            for _ in range(self.max_steps):
                obs, r, terminated, truncated, _ = self.env.step(self.act(x, obs))
                total += float(r)
                if terminated or truncated:
                    break
        return total / self.episodes

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class LunarLander(_GymTask):
    env_id = "LunarLander-v3"

    def __init__(self, episodes: int = 3, max_steps: int = 1000):
        super().__init__("lunar", np.zeros(12), np.full(12, 2.0), episodes, max_steps,
                         "LunarLander-v3, 12-parameter heuristic controller (TuRBO paper)")

    def act(self, w, s) -> int:
        angle_targ = float(np.clip(s[0] * w[0] + s[2] * w[1], -w[2], w[2]))
        hover_targ = w[3] * abs(s[0])
        angle_todo = (angle_targ - s[4]) * w[4] - s[5] * w[5]
        hover_todo = (hover_targ - s[1]) * w[6] - s[3] * w[7]
        if s[6] or s[7]:  # a leg touches the ground
            angle_todo, hover_todo = w[8], -s[3] * w[9]
        if hover_todo > abs(angle_todo) and hover_todo > w[10]:
            return 2  # main engine
        if angle_todo < -w[11]:
            return 3
        if angle_todo > w[11]:
            return 1
        return 0


class RunningStats:
    """Mean and variance of a stream of vectors, merged a batch at a time (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def push(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.size)
        if not len(batch):
            return
        k, mu = len(batch), batch.mean(axis=0)
        delta, total = mu - self.mean, self.n + len(batch)
        self.m2 += ((batch - mu) ** 2).sum(axis=0) + delta**2 * self.n * k / total
        self.mean += delta * k / total
        self.n = total

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation; 1 where it is undefined or (near) zero, so such a feature is only centred."""
        if self.n < 2:
            return np.ones_like(self.mean)
        sd = np.sqrt(self.m2 / (self.n - 1))
        return np.where(sd < 1e-8, 1.0, sd)


OBS_NORMS = ("none", "fixed", "running")


class LinearPolicyTask(_GymTask):
    """A MuJoCo task flown by a linear policy a = clip(W s', -1, 1), W in [-1, 1]^(act x obs), s' the state
    after the chosen observation normalisation (module docstring)."""

    def __init__(self, name: str, env_id: str, obs_dim: int, act_dim: int, episodes: int = 3, max_steps: int = 1000,
                 obs_norm: str = "none", obs_mean=None, obs_std=None, calibration_policies: int = 8):
        if obs_norm not in OBS_NORMS:
            raise NasagentError(f"{name}: obs_norm must be one of {', '.join(OBS_NORMS)}, got {obs_norm!r}")
        if (obs_mean is None) != (obs_std is None):
            raise NasagentError(f"{name}: give both obs_mean and obs_std, or neither (then they are estimated)")
        if obs_mean is not None and obs_norm != "fixed":
            raise NasagentError(f"{name}: obs_mean / obs_std need obs_norm='fixed', got obs_norm={obs_norm!r}")
        self.env_id = env_id
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_norm, self.calibration_policies = obs_norm, int(calibration_policies)
        self.mu, self.sigma = np.zeros(obs_dim), np.ones(obs_dim)
        if obs_mean is not None:
            self.mu, self.sigma = self._stats_vector(name, obs_mean, "obs_mean"), self._stats_vector(name, obs_std, "obs_std")
            if (self.sigma <= 0).any():
                raise NasagentError(f"{name}: obs_std must be positive everywhere, got {self.sigma.tolist()}")
        self._calibrated = obs_norm != "fixed" or obs_mean is not None
        self.stats, self._seen = RunningStats(obs_dim), []
        n = obs_dim * act_dim
        norm = "" if obs_norm == "none" else f", {obs_norm} observation normalisation"
        super().__init__(name, -np.ones(n), np.ones(n), episodes, max_steps,
                         f"{env_id}, linear policy {act_dim}x{obs_dim}{norm}, {episodes} episodes per evaluation")

    def _stats_vector(self, name: str, v, what: str) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.shape != (self.obs_dim,) or not np.isfinite(v).all():
            raise NasagentError(f"{name}: {what} must be {self.obs_dim} finite numbers, got {v.tolist()}")
        return v

    def reward(self, x: np.ndarray) -> float:
        if not self._calibrated:
            self._calibrate()
        if self.obs_norm == "running":  # frozen for this evaluation, then updated with the states it saw
            self.mu, self.sigma, self._seen = self.stats.mean.copy(), self.stats.std, []
        value = super().reward(x)
        if self.obs_norm == "running":
            self.stats.push(np.asarray(self._seen))
            self._seen = []
        return value

    def _calibrate(self) -> None:
        """Fixed statistics from ``calibration_policies`` seeded random policies in the box, one episode each."""
        rng, states = np.random.default_rng(12345), []
        for i in range(self.calibration_policies):
            W = rng.uniform(-1.0, 1.0, (self.act_dim, self.obs_dim))
            obs, _ = self.env.reset(seed=10_000 + i)
            for _ in range(self.max_steps):
                states.append(obs)
                obs, _, terminated, truncated, _ = self.env.step(np.clip(W @ obs, -1.0, 1.0))
                if terminated or truncated:
                    break
        stats = RunningStats(self.obs_dim)
        stats.push(np.asarray(states))
        self.mu, self.sigma, self._calibrated = stats.mean, stats.std, True

    def act(self, x, obs):
        if self.obs_norm == "running":
            self._seen.append(obs)
        if self.obs_norm != "none":
            obs = (obs - self.mu) / self.sigma
        return np.clip(x.reshape(self.act_dim, self.obs_dim) @ obs, -1.0, 1.0)


def control_benchmark(spec: str, episodes: int | None = None, max_steps: int | None = None, layout_seed: int | None = None,
                      obs_norm: str | None = None, obs_mean=None, obs_std=None):
    """Build a control task by name (``rover-60``, ``lunar``, ``swimmer``, ``hopper``); ``obs_norm`` (and
    ``obs_mean`` / ``obs_std`` for ``"fixed"``) apply to the MuJoCo tasks only."""
    gym_opts = {k: int(v) for k, v in (("episodes", episodes), ("max_steps", max_steps)) if v is not None}
    norm_opts = {k: v for k, v in (("obs_norm", obs_norm), ("obs_mean", obs_mean), ("obs_std", obs_std)) if v is not None}
    if norm_opts == {"obs_norm": "none"}:
        norm_opts = {}  # an explicit obs_norm="none" is the default, accepted by every task
    if norm_opts and spec not in ("swimmer", "hopper"):
        raise NasagentError(f"{spec} takes no observation normalisation (only the linear-policy tasks swimmer and hopper do)")
    if spec.startswith("rover-"):
        dim = spec.split("-", 1)[1]
        if not dim.isdigit() or int(dim) < 8 or int(dim) % 2:
            raise NasagentError(f"rover dimension must be an even number >= 8 (e.g. rover-60), got {spec!r}")
        if gym_opts:
            raise NasagentError("rover takes no episodes / max_steps options (it is deterministic)")
        return Rover(n_points=int(dim) // 2, layout_seed=0 if layout_seed is None else int(layout_seed))
    if layout_seed is not None:
        raise NasagentError(f"{spec} takes no layout_seed option (only rover does)")
    if spec == "lunar":
        task = LunarLander(**gym_opts)
    elif spec == "swimmer":
        task = LinearPolicyTask("swimmer", "Swimmer-v5", 8, 2, **gym_opts, **norm_opts)
    elif spec == "hopper":
        task = LinearPolicyTask("hopper", "Hopper-v5", 11, 3, **gym_opts, **norm_opts)
    else:
        raise NasagentError(f"unknown control task {spec!r}; tasks: {', '.join(CONTROL_TASKS)}")
    _require_simulator(task.env_id)  # refused now, not after 100 failed trials
    return task


def _require_simulator(env_id: str) -> None:
    """Check that gymnasium and the task's simulator can be imported, without building an environment (a report or
    a Ray driver need not run one)."""
    import importlib.util

    needs = ("gymnasium", "Box2D" if env_id.startswith("LunarLander") else "mujoco")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise NasagentError(f"{env_id} needs {' and '.join(missing)}, which is not installed; install: pip install 'nasagent[control]'")


def is_control(spec: str) -> bool:
    return spec in ("lunar", "swimmer", "hopper") or spec.startswith("rover-")
