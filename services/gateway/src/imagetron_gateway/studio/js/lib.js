// The studio's only libraries (vendored, see ../vendor/README.md), in one place.
import { h, render, Fragment, createContext, Component } from "../vendor/preact-10.28.4/preact.module.js";
import {
  useState, useEffect, useRef, useMemo, useCallback, useContext, useLayoutEffect,
} from "../vendor/preact-10.28.4/hooks.module.js";
import htm from "../vendor/htm-3.1.1/htm.module.js";

// htm turns tagged templates into Preact elements without eval or a build step.
export const html = htm.bind(h);
export {
  h, render, Fragment, createContext, Component,
  useState, useEffect, useRef, useMemo, useCallback, useContext, useLayoutEffect,
};
