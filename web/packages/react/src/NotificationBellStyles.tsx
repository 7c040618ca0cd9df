import { useInsertionEffect } from "react";
import { notificationBellCss } from "./styles";

const ATTRIBUTE = "data-tour-notify-bell";
let mounted = 0;

export interface NotificationBellStylesProps {
  /** For a Content-Security-Policy that allows styles by nonce. */
  nonce?: string | undefined;
}

/**
 * Puts the bell's stylesheet in the document head once, however many bells are mounted,
 * and takes it out with the last one. Set as text, so nothing in it is parsed as markup.
 */
export function NotificationBellStyles({ nonce }: NotificationBellStylesProps): null {
  useInsertionEffect(() => {
    mounted += 1;
    let element = document.head.querySelector<HTMLStyleElement>(`style[${ATTRIBUTE}]`);
    if (element === null) {
      element = document.createElement("style");
      element.setAttribute(ATTRIBUTE, "");
      if (nonce !== undefined) element.nonce = nonce;
      element.textContent = notificationBellCss;
      document.head.append(element);
    }
    return () => {
      mounted -= 1;
      if (mounted === 0) element.remove();
    };
  }, [nonce]);
  return null;
}
