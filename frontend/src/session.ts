// The signed-in API key, kept in localStorage so a reload stays signed in.
import { useCallback, useState } from "react";

export const KEY_STORAGE = "expertgate.apiKey";

function read(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled (private mode): sign in per page load
  }
}

export function useApiKey(): [string | null, (key: string | null) => void] {
  const [key, setKey] = useState<string | null>(read);
  const update = useCallback((next: string | null) => {
    try {
      if (next) localStorage.setItem(KEY_STORAGE, next);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: the key lives in memory only
    }
    setKey(next);
  }, []);
  return [key, update];
}
